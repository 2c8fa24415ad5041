-- Quotes answered to WhatsApp shoppers. One shopper (wa_id) has at most one
-- open quote: a new one supersedes it; "sí" confirms it, "no" declines it.
create table quotes (
    id           uuid primary key default gen_uuid_v7(),
    wa_id        text not null,
    -- the incoming message that asked for it
    wamid        text not null,
    items        jsonb not null,
    total_minor  bigint not null check (total_minor >= 0),
    currency     char(3) not null,
    status       text not null default 'open'
                 check (status in ('open', 'confirmed', 'declined', 'expired', 'superseded')),
    expires_at   timestamptz not null default now() + interval '24 hours',
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

-- The one open quote of a shopper (enforced), found by wa_id.
create unique index quotes_one_open_per_wa_id on quotes (wa_id) where status = 'open';
-- A shopper's quotes, newest first.
create index quotes_wa_id_created_at on quotes (wa_id, created_at desc);
-- The quote a message produced.
create index quotes_wamid on quotes (wamid);
