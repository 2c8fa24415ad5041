-- Runs are pruned after days (RELEVO_RETAIN_*_HOURS), inbound events are kept
-- longer for payment audit (RELEVO_RETAIN_EVENTS_HOURS): an event outlives its
-- run, whose id then becomes null instead of blocking the run's deletion.
alter table inbound_events alter column run_id drop not null;
alter table inbound_events drop constraint inbound_events_run_id_fkey;
alter table inbound_events
    add constraint inbound_events_run_id_fkey foreign key (run_id)
    references engine.runs (id) on delete set null deferrable initially deferred;
