//! Regression tests for apalis 1.0 behaviours the engine guards against
//! (`apalis-notes.md`). If an apalis upgrade changes them, these say so.
//! Covered elsewhere: no backoff on stored retries
//! (`transient_retries_back_off_instead_of_looping`), the `RetryAfterError`
//! hot loop (`a_rate_limited_step_resumes_at_retry_after_without_burning_an_attempt`),
//! orphan re-enqueue ignoring max attempts
//! (`a_run_that_keeps_killing_its_process_fails_after_max_attempts`), pubsub
//! missing scheduled jobs (`a_durable_timer_survives_a_restart`, retry `at`).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use relevo::engine::{queue_name, Registry, RunCtx, StepError, WakeJob, Workflow};
use serde_json::json;

use crate::helpers::*;

struct Counted {
    calls: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Workflow for Counted {
    const NAME: &'static str = "test.counted";
    type Input = serde_json::Value;

    async fn run(&self, ctx: &mut RunCtx, _: serde_json::Value) -> Result<(), StepError> {
        let (calls, gate) = (self.calls.clone(), self.gate.clone());
        ctx.step("only", |_| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await.map_err(StepError::transient)?;
            Ok(())
        })
        .await
    }
}

async fn job_statuses(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar("select status from apalis.jobs where job_type = $1 order by id")
        .bind(queue_name(Counted::NAME))
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Makes apalis deliver the run's jobs again, as after a lost ack or an orphan
/// re-enqueue of a job whose worker is alive.
async fn redeliver(db: &TestDb) {
    sqlx::query(
        "update apalis.jobs set status = 'Pending', lock_by = null, lock_at = null, done_at = null
          where job_type = $1",
    )
    .bind(queue_name(Counted::NAME))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("select pg_notify('apalis::job::insert', '{}')").execute(&db.pool).await.unwrap();
}

#[tokio::test]
async fn a_job_delivered_again_after_its_run_finished_does_nothing() {
    // apalis acks results asynchronously (up to a heartbeat late); a crash in
    // that window delivers a finished job again.
    let db = TestDb::new().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(1000));
    let app = spawn_app(&db, Registry::new().register(Counted { calls: calls.clone(), gate })).await;
    let id = app.engine.start::<Counted>(&json!({})).await.unwrap();
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;
    // The success deleted its job with the finish: it cannot come back by itself.
    wait_for("the job to be gone", Duration::from_secs(20), || async {
        job_statuses(&db).await.is_empty().then_some(())
    })
    .await;

    // Deliver the same wake-up again, as a lost ack would.
    let mut conn = db.pool.acquire().await.unwrap();
    relevo::engine::store::push_wake_using(&mut conn, Counted::NAME, WakeJob { run_id: id, wake: 0 }, None)
        .await
        .unwrap();
    drop(conn);
    wait_for("the job to be acked again", Duration::from_secs(20), || async {
        (job_statuses(&db).await == ["Done"]).then_some(())
    })
    .await;

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let attempts: i64 = sqlx::query_scalar("select count(*) from engine.run_attempts where run_id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1, "the redelivered job did not start an attempt");
    app.stop().await;
}

#[tokio::test]
async fn a_live_run_whose_job_is_re_enqueued_is_not_executed_twice() {
    // apalis#530: a long job can be treated as an orphan and handed out again
    // while its worker still runs it.
    let db = TestDb::new().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = spawn_app(&db, Registry::new().register(Counted { calls: calls.clone(), gate: gate.clone() })).await;
    let id = app.engine.start::<Counted>(&json!({})).await.unwrap();
    wait_for("the step to start", Duration::from_secs(20), || async {
        (calls.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    redeliver(&db).await;
    // The redelivered job must find the lease held and reschedule itself.
    wait_for("the duplicate delivery to be deferred", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("select count(*) from apalis.jobs where job_type = $1")
            .bind(queue_name(Counted::NAME))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n >= 2).then_some(())
    })
    .await;
    gate.add_permits(1000);
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(30)).await;

    assert_eq!(calls.load(Ordering::SeqCst), 1, "the step body ran once");
    app.stop().await;
}

#[tokio::test]
async fn workers_recover_after_every_database_connection_is_killed() {
    // apalis-notes "outage": a Postgres restart wedged a pubsub worker for >75 s.
    let db = TestDb::new().await;
    let app = spawn_app(&db, relevo::workflows::selftest::register(Registry::new())).await;
    let start = |engine: relevo::engine::Engine| async move {
        let mut tx = engine.pool().begin().await.unwrap();
        let id = engine
            .start_by_name_using(&mut tx, "selftest.steps", &json!({"steps": 1}), None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let first = start(app.engine.clone()).await;
    wait_status(&db.pool, first, "succeeded", Duration::from_secs(20)).await;

    admin_execute(format!(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{}'",
        db.name
    ))
    .await;
    let db_pool = relevo::db::pool(db.options.clone(), 2).await.unwrap();
    let second = start(app.engine.clone()).await;

    wait_status(&db_pool, second, "succeeded", Duration::from_secs(30)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_run_whose_job_apalis_gave_up_is_woken_by_the_sweeper() {
    // apalis retries a failing job up to max_attempts, then leaves it Failed
    // for good: a database outage that long strands the run it carried.
    let db = TestDb::new().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(1000));
    let registry = || Registry::new().register(Counted { calls: calls.clone(), gate: gate.clone() });
    let engine = relevo::engine::Engine::new(db.pool.clone(), registry(), fast_engine());
    let id = engine.start::<Counted>(&json!({})).await.unwrap();
    sqlx::query("update apalis.jobs set status = 'Failed', attempts = max_attempts where job_type = $1")
        .bind(queue_name(Counted::NAME))
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("update engine.runs set next_run_at = now() - interval '10 seconds' where id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();

    // Act: a node starts; its sweeper (every second in tests) finds the run.
    let app = spawn_app(&db, registry()).await;

    // Assert
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    app.stop().await;
}
