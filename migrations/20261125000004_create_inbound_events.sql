-- Every verified webhook, stored before it is answered 2xx. One row per
-- provider event (a WhatsApp POST with several messages/statuses gives several);
-- (provider, dedupe_key) makes redeliveries duplicates.
create table inbound_events (
    id                uuid primary key,
    provider          text not null,
    dedupe_key        text not null,
    provider_event_id text,
    type              text not null,
    -- the request headers worth keeping for audit (signatures, request ids; no credentials)
    headers           jsonb not null,
    -- the raw body exactly as received (what the signature covers)
    body              text not null,
    -- this event's JSON (for WhatsApp: the message or status with its context)
    payload           jsonb not null,
    run_id            uuid not null references engine.runs (id) deferrable initially deferred,
    received_at       timestamptz not null default now(),
    unique (provider, dedupe_key)
);

create index inbound_events_by_provider on inbound_events (provider, id desc);
create index inbound_events_by_received on inbound_events (received_at);
create index inbound_events_by_run on inbound_events (run_id);
