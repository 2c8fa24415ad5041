-- The durable-workflow engine: runs, their checkpointed steps and their attempts.
-- apalis.jobs only carries wake-ups ({run_id, wake}); the truth of a run lives here.
create schema if not exists engine;

create type engine.run_status as enum
    ('pending', 'running', 'sleeping', 'succeeded', 'failed', 'cancelled');

create table engine.runs (
    id                 uuid primary key,
    -- creation order; per-key ordering starts runs of one key in this order
    seq                bigint generated always as identity unique,
    workflow           text not null,
    workflow_version   int not null default 1,
    ordering_key       text,
    input              jsonb not null,
    status             engine.run_status not null default 'pending',
    -- failed executions counted against the retry policy (crashes included)
    failures           int not null default 0,
    -- bumped by every claim; every checkpoint and status write is guarded by it
    fence              bigint not null default 0,
    -- bumped by every scheduled wake-up; a queue job whose wake is older is stale
    wake_seq           bigint not null default 0,
    lease_owner        text,
    lease_until        timestamptz,
    next_run_at        timestamptz not null default now(),
    last_error_kind    text,
    last_error_step    text,
    last_error_message text,
    trigger_event_id   uuid,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    started_at         timestamptz,
    finished_at        timestamptz
);

create index runs_active_by_key on engine.runs (ordering_key, seq)
    where status in ('pending', 'running', 'sleeping') and ordering_key is not null;
create index runs_active_due on engine.runs (next_run_at)
    where status in ('pending', 'running', 'sleeping');
create index runs_by_created on engine.runs (created_at desc, id desc);
create index runs_by_workflow on engine.runs (workflow, created_at desc);
create index runs_by_status on engine.runs (status, created_at desc);
create index runs_finished on engine.runs (finished_at) where finished_at is not null;

create table engine.run_steps (
    run_id      uuid not null references engine.runs (id) on delete cascade,
    step        text not null,
    -- 'completed', or 'sleeping' for a durable timer that has not fired yet
    status      text not null check (status in ('completed', 'sleeping')),
    output      jsonb not null,
    fence       bigint not null,
    started_at  timestamptz not null,
    finished_at timestamptz,
    primary key (run_id, step)
);

create table engine.run_attempts (
    run_id        uuid not null references engine.runs (id) on delete cascade,
    fence         bigint not null,
    worker        text not null,
    started_at    timestamptz not null default now(),
    finished_at   timestamptz,
    -- null while running; then succeeded, sleeping, retry, rate_limited, failed,
    -- blocked, cancelled, lost_lease or crashed
    outcome       text,
    error_kind    text,
    error_step    text,
    error_message text,
    primary key (run_id, fence)
);
