-- The common path of claiming a run for an attempt, in one round trip:
-- key lock, row lock, checks, fence bump, attempt row, stored steps.
-- Rare paths (lease held elsewhere, a crashed attempt to account for) return
-- their outcome and are handled by the engine's Rust code in a transaction.
create function engine.claim_run(p_id uuid, p_wake bigint, p_owner text, p_lease_secs float8)
returns table (outcome text, workflow text, ordering_key text, input jsonb, fence bigint,
               failures int, steps jsonb)
language plpgsql as $$
#variable_conflict use_column
declare
    r engine.runs%rowtype;
    k text;
begin
    select runs.ordering_key into k from engine.runs where runs.id = p_id;
    if not found then
        outcome := 'missing'; return next; return;
    end if;
    if k is not null then
        perform pg_advisory_xact_lock(hashtextextended(k, 0));
    end if;
    select * into r from engine.runs where runs.id = p_id for update;
    workflow := r.workflow;
    ordering_key := k;
    if r.wake_seq <> p_wake or r.status in ('succeeded', 'failed', 'cancelled') then
        outcome := 'stale'; return next; return;
    end if;
    if r.lease_until > now() then
        outcome := 'held'; return next; return;
    end if;
    if k is not null and exists (
        select 1 from engine.runs o
         where o.ordering_key = k and o.id <> p_id
           and ((o.seq < r.seq and o.status in ('pending', 'running', 'sleeping')) or o.status = 'running')) then
        outcome := 'blocked'; return next; return;
    end if;
    if exists (select 1 from engine.run_attempts a where a.run_id = p_id and a.finished_at is null) then
        outcome := 'crashed'; return next; return;
    end if;
    update engine.runs
       set fence = runs.fence + 1, status = 'running', lease_owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_secs),
           started_at = coalesce(runs.started_at, now()), updated_at = now()
     where runs.id = p_id
     returning runs.fence into fence;
    insert into engine.run_attempts (run_id, fence, worker) values (p_id, fence, p_owner);
    failures := r.failures;
    input := r.input;
    select coalesce(jsonb_agg(jsonb_build_object('step', s.step, 'sleeping', s.status = 'sleeping',
                                                 'output', s.output)), '[]'::jsonb)
      into steps
      from engine.run_steps s where s.run_id = p_id;
    outcome := 'claimed';
    return next;
end $$;
