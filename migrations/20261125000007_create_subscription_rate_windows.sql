-- Per-subscription rate limit shared by every Relevo node: one row per
-- subscription and wall-clock second, counting the deliveries sent in it.
create table subscription_rate_windows (
    subscription_id uuid not null references subscriptions (id) on delete cascade,
    window_start    timestamptz not null,
    sent            integer not null,
    primary key (subscription_id, window_start)
);
