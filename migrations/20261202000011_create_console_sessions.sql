-- The ops console: signed-in sessions and the audit of every action taken.

create table console_sessions (
    -- sha256 of the cookie's random token: a leaked table signs nobody in
    token_hash  bytea primary key,
    actor       text not null,
    -- sha256 of the credential it was opened with (the admin token, or the
    -- user's password hash): changing that credential ends the session
    credential  bytea not null,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null
);
create index console_sessions_expiry on console_sessions (expires_at);

create table console_audit (
    id      bigint generated always as identity primary key,
    -- the run acted on; null for bulk actions (their filter is in `detail`)
    run_id  uuid,
    actor   text not null,
    action  text not null,
    detail  text not null,
    at      timestamptz not null default now()
);
create index console_audit_by_run on console_audit (run_id, id);
