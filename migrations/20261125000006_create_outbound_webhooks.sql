-- Outbound webhooks: subscriptions, their signing secrets, and one delivery per
-- (event, matching subscription) created by a trigger in the transaction that
-- writes the event.
alter table outbox_events
    add column idempotency_key text unique,
    add column source text not null default 'relevo';

create table subscriptions (
    id                 uuid primary key,
    url                text not null,
    event_types        text[] not null,
    description        text,
    status             text not null default 'enabled' check (status in ('enabled', 'disabled')),
    rate_limit_per_sec integer check (rate_limit_per_sec > 0),
    disabled_reason    text,
    -- first failure since the last success; disabled after RELEVO_OUTBOUND_DISABLE_AFTER
    failing_since      timestamptz,
    last_success_at    timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

create table subscription_secrets (
    id              bigint generated always as identity primary key,
    subscription_id uuid not null references subscriptions (id) on delete cascade,
    -- the raw HMAC key (the part after whsec_, base64-decoded)
    key             bytea not null,
    created_at      timestamptz not null default now(),
    -- null while current; set to now() + 24 h when rotated out
    expires_at      timestamptz
);
create index subscription_secrets_by_subscription on subscription_secrets (subscription_id);

create table deliveries (
    id              uuid primary key default gen_random_uuid(),
    event_id        uuid not null references outbox_events (id) on delete cascade,
    subscription_id uuid not null references subscriptions (id) on delete cascade,
    -- pending, delivering, delivered, failed
    status          text not null default 'pending',
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    lease_until     timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz not null default now(),
    delivered_at    timestamptz,
    unique (event_id, subscription_id)
);
create index deliveries_due on deliveries (next_attempt_at) where status in ('pending', 'delivering');
create index deliveries_by_subscription on deliveries (subscription_id, created_at desc);

create table delivery_attempts (
    id            bigint generated always as identity primary key,
    delivery_id   uuid not null references deliveries (id) on delete cascade,
    attempt       integer not null,
    started_at    timestamptz not null,
    duration_ms   integer not null,
    status_code   integer,
    error_kind    text,
    response_body text
);
create index delivery_attempts_by_delivery on delivery_attempts (delivery_id, id);

create function fan_out_outbox_event() returns trigger language plpgsql as $$
begin
    -- relevo.test events are addressed to one subscription by the API itself.
    if new.type <> 'relevo.test' then
        insert into deliveries (event_id, subscription_id)
        select new.id, s.id from subscriptions s
         where s.status = 'enabled' and (new.type = any (s.event_types) or '*' = any (s.event_types));
        if found then
            perform pg_notify('relevo_deliveries', '');
        end if;
    end if;
    return new;
end $$;

create trigger outbox_events_fan_out after insert on outbox_events
    for each row execute function fan_out_outbox_event();
