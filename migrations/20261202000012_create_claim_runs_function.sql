-- Claims many unkeyed runs in one statement (the engine's claim batcher hands
-- it every wake-up that arrived while the previous batch was claimed).
-- Nothing here waits: a run whose row another transaction holds comes back
-- `busy`, a keyed one `keyed`, and the engine claims those one at a time with
-- engine.claim_run (key lock, then row lock), so batches cannot deadlock with
-- each other or with completions. Other outcomes are claim_run's.
create function engine.claim_runs(p_ids uuid[], p_wakes bigint[], p_owner text, p_lease_secs float8)
returns table (run_id uuid, outcome text, workflow text, input jsonb, fence bigint,
               failures int, steps jsonb)
language plpgsql as $$
#variable_conflict use_column
declare
    r engine.runs%rowtype;
begin
    for i in 1 .. coalesce(array_length(p_ids, 1), 0) loop
        run_id := p_ids[i];
        workflow := null; input := null; fence := null; failures := null; steps := null;
        select * into r from engine.runs where runs.id = run_id for update skip locked;
        if not found then
            outcome := case when exists (select 1 from engine.runs where runs.id = run_id)
                            then 'busy' else 'missing' end;
            return next; continue;
        end if;
        workflow := r.workflow;
        if r.ordering_key is not null then
            outcome := 'keyed';
        elsif r.wake_seq <> p_wakes[i] or r.status in ('succeeded', 'failed', 'cancelled') then
            outcome := 'stale';
        elsif r.lease_until > now() then
            outcome := 'held';
        -- A run that was never claimed (fence 0) has no attempts and no steps.
        elsif r.fence > 0 and exists (select 1 from engine.run_attempts a
                                       where a.run_id = r.id and a.finished_at is null) then
            outcome := 'crashed';
        else
            update engine.runs
               set fence = runs.fence + 1, status = 'running', lease_owner = p_owner,
                   lease_until = now() + make_interval(secs => p_lease_secs),
                   started_at = coalesce(runs.started_at, now()), updated_at = now()
             where runs.id = r.id
             returning runs.fence into fence;
            insert into engine.run_attempts (run_id, fence, worker) values (r.id, fence, p_owner);
            failures := r.failures;
            input := r.input;
            if r.fence > 0 then
                select coalesce(jsonb_agg(jsonb_build_object('step', s.step, 'sleeping', s.status = 'sleeping',
                                                             'output', s.output)), '[]'::jsonb)
                  into steps
                  from engine.run_steps s where s.run_id = r.id;
            else
                steps := '[]'::jsonb;
            end if;
            outcome := 'claimed';
        end if;
        return next;
    end loop;
end $$;

-- Room on each page for the updates a run goes through (claim, checkpoints,
-- finish), so they can stay on the page (HOT) instead of adding index entries.
alter table engine.runs set (fillfactor = 70);
