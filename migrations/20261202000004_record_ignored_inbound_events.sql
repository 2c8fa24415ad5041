-- An event kept for audit but not acted on (a HighLevel location that is not
-- connected): stored with the reason, and no run.
alter table inbound_events add column ignored_reason text;
