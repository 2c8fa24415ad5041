//! Statements over many runs at once: creating a batch of unkeyed runs (one
//! insert and one queue push for the whole batch) and releasing a node's runs
//! at shutdown.

use apalis::prelude::TaskBuilder;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{rewake_using, WakeJob};
use crate::engine::{error::Result, workflow::queue_name};

/// Inserts many unkeyed runs of one workflow and their wake-ups in the caller's
/// transaction (the ingest batch path): two statements whatever the count.
pub async fn insert_unkeyed_runs_using(
    conn: &mut PgConnection,
    workflow: &str,
    version: i32,
    runs: &[(Uuid, Value, Option<Uuid>)],
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = runs.iter().map(|r| r.0).collect();
    let inputs: Vec<Value> = runs.iter().map(|r| r.1.clone()).collect();
    let triggers: Vec<Option<Uuid>> = runs.iter().map(|r| r.2).collect();
    sqlx::query(
        "insert into engine.runs (id, workflow, workflow_version, input, trigger_event_id)
         select id, $2, $3, input, trigger from unnest($1::uuid[], $4::jsonb[], $5::uuid[]) as t(id, input, trigger)",
    )
    .bind(&ids)
    .bind(workflow)
    .bind(version)
    .bind(&inputs)
    .bind(&triggers)
    .execute(&mut *conn)
    .await?;
    let tasks = ids
        .iter()
        .map(|id| {
            let bytes = serde_json::to_vec(&WakeJob { run_id: *id, wake: 0 }).expect("WakeJob serialises");
            TaskBuilder::new(bytes).max_attempts(super::wake::MAX_ATTEMPTS).build()
        })
        .collect();
    apalis_postgres::queries::push_tasks(conn, &queue_name(workflow), tasks).await?;
    Ok(())
}


/// Hands the runs `node` still holds back to the queue: pending again, their
/// open attempts closed as `released`, their fence bumped so the abandoned
/// attempts can never write again, and a wake-up each.
pub(crate) async fn release_node_runs_using(conn: &mut PgConnection, node: &str) -> Result<u64> {
    let held: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "update engine.runs set status = 'pending', lease_owner = null, lease_until = null, updated_at = now()
          where lease_owner = $1 and status = 'running'
          returning id, workflow, fence",
    )
    .bind(node)
    .fetch_all(&mut *conn)
    .await?;
    for (id, workflow, fence) in &held {
        sqlx::query(
            "update engine.run_attempts set finished_at = now(), outcome = 'released'
              where run_id = $1 and fence = $2 and finished_at is null",
        )
        .bind(id)
        .bind(fence)
        .execute(&mut *conn)
        .await?;
        sqlx::query("update engine.runs set fence = fence + 1 where id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        rewake_using(conn, *id, workflow, None).await?;
    }
    Ok(held.len() as u64)
}
