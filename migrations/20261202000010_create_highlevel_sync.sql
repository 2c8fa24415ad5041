-- HighLevel appointment sync: sealed secrets, connected locations, a shared
-- rate limiter, and appointments with their sync history.

-- One sealed probe: a node whose RELEVO_SECRET_KEY cannot open it refuses to start.
create table sealing_probe (
    id     integer primary key check (id = 1),
    sealed bytea not null
);

-- Outbound signing keys are sealed too; rows written before this migration are
-- sealed by the first node that starts with it (sealing needs the key, SQL has none).
alter table subscription_secrets add column sealed boolean not null default false;

create table highlevel_locations (
    id                 text primary key,           -- HighLevel locationId
    company_id         text,
    status             text not null default 'connected'
                       check (status in ('connected', 'needs_reauthorization')),
    status_reason      text,
    -- XChaCha20-Poly1305 under RELEVO_SECRET_KEY; never returned, never logged
    access_token       bytea not null,
    refresh_token      bytea not null,
    token_expires_at   timestamptz not null,
    -- bumped by every rotation: a caller that saw generation N and got a 401
    -- refreshes only if the stored pair is still N (single flight)
    token_generation   bigint not null default 1,
    scopes             text[] not null default '{}',
    refreshed_at       timestamptz,
    default_calendar_id text,
    timezone           text not null default 'America/Lima',
    -- {"mon": {"open": "08:00", "close": "20:00"} | null (closed), ... "sun": ...}
    business_hours     jsonb not null default '{"mon":{"open":"08:00","close":"20:00"},"tue":{"open":"08:00","close":"20:00"},"wed":{"open":"08:00","close":"20:00"},"thu":{"open":"08:00","close":"20:00"},"fri":{"open":"08:00","close":"20:00"},"sat":{"open":"08:00","close":"20:00"},"sun":{"open":"08:00","close":"20:00"}}',
    -- the recurring run that refreshes tokens ahead of expiry
    refresher_run_id   uuid,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

-- The limiter every node shares (GCRA, virtual scheduling): `next_slot_at` is
-- the earliest time the next request for the location may be sent. Unlogged:
-- after a crash the slots restart empty, which only forgets a past burst.
-- HighLevel's own counters, as last seen in its X-RateLimit-* headers, live
-- beside them for ops.
create unlogged table highlevel_rate_limits (
    location_id        text primary key,
    next_slot_at       timestamptz not null default now(),
    -- HighLevel answered 429: nothing is sent for the location before this
    paused_until       timestamptz,
    remaining          integer,
    interval_ms        integer,
    daily_remaining    integer,
    observed_at        timestamptz
);

-- Reserves the next slot for `p_location` when it is at most `p_max_wait`
-- away: `granted` with how long to wait before sending (0 = now). When the
-- reservations already reach further than that, nothing is reserved and
-- `wait_for` says when to come back. One statement, so concurrent callers on
-- every node serialise on the row.
create function highlevel_rate_take(p_location text, p_spacing interval, p_max_wait interval,
                                    out granted boolean, out wait_for interval)
language plpgsql as $$
declare
    v_now  timestamptz := clock_timestamp();
    v_slot timestamptz;
begin
    select greatest(paused_until - v_now, interval '0') into wait_for
      from highlevel_rate_limits where location_id = p_location and paused_until > v_now;
    if found then
        granted := false;
        return;
    end if;
    insert into highlevel_rate_limits as r (location_id, next_slot_at)
    values (p_location, v_now + p_spacing)
    on conflict (location_id) do update
       set next_slot_at = greatest(r.next_slot_at, v_now) + p_spacing
     where greatest(r.next_slot_at, v_now) <= v_now + p_max_wait
    returning next_slot_at - p_spacing into v_slot;
    if found then
        granted := true;
        wait_for := greatest(v_slot - v_now, interval '0');
        return;
    end if;
    granted := false;
    select greatest(next_slot_at - v_now - p_max_wait, interval '0') into wait_for
      from highlevel_rate_limits where location_id = p_location;
end $$;

create table appointments (
    id                 uuid primary key,
    location_id        text not null references highlevel_locations (id),
    calendar_id        text not null,
    contact_id         text not null,
    title              text not null,
    notes              text,
    starts_at          timestamptz not null,
    ends_at            timestamptz not null,
    status             text not null default 'scheduled'
                       check (status in ('scheduled', 'confirmed', 'showed', 'noshow', 'cancelled', 'invalid')),
    -- where it was first made: through Relevo's API, or in HighLevel
    origin             text not null check (origin in ('relevo', 'highlevel')),
    ghl_appointment_id text unique,
    -- HighLevel's dateUpdated of the state last applied from it, or when
    -- Relevo last changed it: an event not newer than this changes nothing
    changed_at         timestamptz not null default now(),
    -- overlaps another appointment of its calendar (only possible when it came
    -- from HighLevel, its source of truth); shown to ops, not blocking slots
    conflict           boolean not null default false,
    -- each local change bumps `version` and starts a push; `pushed_version` is
    -- the newest one HighLevel has
    version            bigint not null default 1,
    pushed_version     bigint not null default 0,
    sync_run_id        uuid,
    -- set before the first create request: a retried create looks the slot up first
    create_sent_at     timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    check (ends_at > starts_at)
);

create extension if not exists btree_gist;

-- Two live appointments of one calendar never overlap, whatever the
-- concurrency: the second insert fails with exclusion_violation (409).
alter table appointments add constraint appointments_no_overlap
    exclude using gist (calendar_id with =, tstzrange(starts_at, ends_at) with &&)
    where (status in ('scheduled', 'confirmed') and not conflict);

create index appointments_by_location_time on appointments (location_id, starts_at, id);

-- Every push to HighLevel and every HighLevel event applied (or not), newest last.
create table appointment_sync_log (
    id             bigint generated always as identity primary key,
    appointment_id uuid not null references appointments (id) on delete cascade,
    -- push (Relevo → HighLevel) or webhook (HighLevel → Relevo)
    direction      text not null check (direction in ('push', 'webhook')),
    action         text not null,
    detail         text not null,
    run_id         uuid,
    at             timestamptz not null default now()
);
create index appointment_sync_log_by_appointment on appointment_sync_log (appointment_id, id);
