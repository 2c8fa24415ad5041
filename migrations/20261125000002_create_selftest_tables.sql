-- Side-effect log of the built-in self-test workflows (RELEVO_ENABLE_TEST_WORKFLOWS=1),
-- used by the crash tests and `just bench-engine` to count how often a step body ran.
create schema if not exists selftest;

create table selftest.effects (
    id         bigint generated always as identity primary key,
    run_id     uuid not null,
    step       text not null,
    at         timestamptz not null default clock_timestamp()
);
create index effects_by_run on selftest.effects (run_id, step);
