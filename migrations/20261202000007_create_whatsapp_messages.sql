-- The WhatsApp message log: every message both ways, the shoppers it was
-- with, and Meta's delivery reports.

-- One row per shopper (wa_id), with the profile name Meta last sent.
create table whatsapp_conversations (
    wa_id            text primary key,
    name             text,
    last_message_at  timestamptz not null default now(),
    created_at       timestamptz not null default now()
);
-- Latest activity first (GET /api/v1/conversations), keyset-paged.
create index whatsapp_conversations_latest on whatsapp_conversations (last_message_at desc, wa_id desc);

-- Rank of a message status: a status never moves backwards. A delivery
-- failure (Meta's `failed`) is final and keeps its error.
create function whatsapp_status_rank(status text) returns int
    language sql immutable parallel safe
    return case status
        when 'received' then 0 when 'queued' then 0
        when 'sent' then 1 when 'delivered' then 2 when 'read' then 3
        when 'failed' then 4 else 0 end;

create table whatsapp_messages (
    id             uuid primary key default gen_uuid_v7(),
    wa_id          text not null references whatsapp_conversations (wa_id),
    direction      text not null check (direction in ('inbound', 'outbound')),
    -- Meta's message id: an inbound message's own; an outbound one's once sent.
    wamid          text,
    -- text, image, audio, button, …
    kind           text not null,
    body           text,
    -- the quote the message asked for, answered, confirmed or declined
    quote_id       uuid references quotes (id) on delete set null,
    -- the conversation run that received it or sends it, and (outbound) its send step
    run_id         uuid,
    step           text,
    -- as Relevo knows it; Meta's later reports are in whatsapp_statuses
    status         text not null check (status in ('received', 'queued', 'sent', 'failed')),
    -- outbound: send attempts made, and the last one's error
    attempts       int not null default 0,
    error_code     int,
    error_message  text,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    sent_at        timestamptz
);
create unique index whatsapp_messages_wamid on whatsapp_messages (wamid) where wamid is not null;
-- One reply per send step: a re-run of the step that queued it cannot double it.
create unique index whatsapp_messages_run_step on whatsapp_messages (run_id, step) where step is not null;
-- A conversation's messages, oldest first.
create index whatsapp_messages_wa_id on whatsapp_messages (wa_id, id);
-- The send queue (GET /api/v1/whatsapp/queue-status).
create index whatsapp_messages_queued on whatsapp_messages (id) where status = 'queued';

-- Meta's status reports (`statuses[]`), one row per message id, merged so that
-- repeats and out-of-order arrivals never move a status backwards. Kept apart
-- from whatsapp_messages because a report may arrive before the send step has
-- recorded the wamid Meta answered with.
create table whatsapp_statuses (
    wamid          text primary key,
    recipient      text,
    status         text not null check (status in ('sent', 'delivered', 'read', 'failed')),
    error_code     int,
    error_message  text,
    sent_at        timestamptz,
    delivered_at   timestamptz,
    read_at        timestamptz,
    failed_at      timestamptz,
    updated_at     timestamptz not null default now()
);
