-- A webhook request carrying several events (a WhatsApp POST with K messages
-- and statuses) stores its raw body once; its events reference it. Rows stored
-- before keep their own copy in inbound_events.body.
create table inbound_bodies (
    id          uuid primary key,
    -- the raw body exactly as received (what the signature covers)
    body        text not null,
    received_at timestamptz not null default now()
);

alter table inbound_events alter column body drop not null;
alter table inbound_events
    add column body_id uuid references inbound_bodies (id) deferrable initially deferred;
create index inbound_events_by_body on inbound_events (body_id);
