//! The baselines the engine is measured against, each on the same database
//! with the engine's worker settings: N no-op apalis-postgres jobs; the same
//! three steps as an apalis-workflow 1.0 flow; and the SQL floor, the three
//! steps' bare SQL sent straight from `concurrency` tasks.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use futures::future::BoxFuture;
use relevo::{config::EngineSettings, db};
use sqlx::{postgres::PgConnectOptions, PgPool};

use crate::cpu::{cpu_ms, print_cpu};

/// N no-op jobs drained by one worker: jobs per second.
pub(crate) async fn bench_apalis_noop(options: &PgConnectOptions, s: &EngineSettings, n: usize) -> anyhow::Result<f64> {
    let pool = db::pool(options.clone(), 40).await?;
    let tasks: Vec<_> = (0..n)
        .map(|i| TaskBuilder::new(serde_json::to_vec(&i).unwrap()).build())
        .collect();
    let mut conn = pool.acquire().await?;
    apalis_postgres::queries::push_tasks(&mut *conn, "bench.noop", tasks).await?;
    drop(conn);

    let done = Arc::new(AtomicUsize::new(0));
    let config = Config::default()
        .queue("bench.noop")
        .batch_size(s.batch_size)
        .heartbeat_interval(s.heartbeat)
        .lock_tasks(false);
    let storage = PostgresStorage::<usize>::new(&pool)
        .with_config(config)
        .with_pubsub()
        .poll_with_interval(s.poll_interval);
    let counter = done.clone();
    let worker = WorkerBuilder::new(format!("bench-noop-{}", std::process::id()))
        .backend(storage)
        .data(counter)
        .concurrency(s.concurrency)
        .build(|_: usize, done: Data<Arc<AtomicUsize>>| async move {
            done.fetch_add(1, Ordering::Relaxed);
            Ok::<_, BoxDynError>(())
        });
    let cpu = cpu_ms();
    let started = Instant::now();
    let worker = spawn_worker(|stop| worker.run_until(stop));
    while done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    print_cpu("apalis_noop", cpu, n);
    worker.stop().await;
    pool.close().await;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// The engine bench's three steps as an apalis-workflow `SteppedFlow`.
pub(crate) async fn bench_apalis_workflow(options: &PgConnectOptions, s: &EngineSettings, n: usize) -> anyhow::Result<f64> {
    use apalis_workflow::{SteppedFlow, WorkflowSink};
    const QUEUE: &str = "bench.workflow";
    let pool = db::pool(options.clone(), 40).await?;
    let config = Config::default()
        .queue(QUEUE)
        .batch_size(s.batch_size)
        .heartbeat_interval(s.heartbeat)
        .lock_tasks(false);
    let mut storage = PostgresStorage::new(&pool)
        .with_config(config)
        .with_pubsub()
        .poll_with_interval(s.poll_interval);
    for _ in 0..n {
        storage.push_start(uuid::Uuid::now_v7()).await?;
    }
    let flow = SteppedFlow::new("bench-flow")
        .and_then(|run: uuid::Uuid, pool: Data<PgPool>| async move { effect(&pool, run, "one").await })
        .and_then(|run: uuid::Uuid, pool: Data<PgPool>| async move { effect(&pool, run, "two").await })
        .and_then(|run: uuid::Uuid, pool: Data<PgPool>| async move { effect(&pool, run, "three").await });
    let worker = WorkerBuilder::new(format!("bench-workflow-{}", std::process::id()))
        .backend(storage)
        .data(pool.clone())
        .concurrency(s.concurrency)
        .build(flow);
    let cpu = cpu_ms();
    let started = Instant::now();
    let worker = spawn_worker(|stop| worker.run_until(stop));
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let acked: i64 = sqlx::query_scalar("select count(*) from apalis.jobs where job_type = $1 and status = 'Done'")
            .bind(QUEUE)
            .fetch_one(&pool)
            .await?;
        if acked as usize >= 3 * n {
            break;
        }
    }
    let elapsed = started.elapsed();
    print_cpu("apalis_workflow", cpu, n);
    worker.stop().await;
    let rows: i64 = sqlx::query_scalar("select count(*) from selftest.effects").fetch_one(&pool).await?;
    anyhow::ensure!(rows as usize >= 3 * n, "expected {} step rows, found {rows}", 3 * n);
    sqlx::query("truncate selftest.effects").execute(&pool).await?;
    pool.close().await;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// The floor under any engine: the SQL a run of three database steps cannot
/// do without, sent straight from `concurrency` tasks: three transactions,
/// each writing the step's effect row and a checkpoint row.
pub(crate) async fn bench_sql_floor(options: &PgConnectOptions, s: &EngineSettings, n: usize) -> anyhow::Result<f64> {
    let pool = db::pool(options.clone(), 40).await?;
    sqlx::query(
        "create table if not exists selftest.floor_steps (
            run_id uuid not null, step text not null, output jsonb not null, primary key (run_id, step))",
    )
    .execute(&pool)
    .await?;
    sqlx::query("truncate selftest.floor_steps").execute(&pool).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = cpu_ms();
    let started = Instant::now();
    let tasks: Vec<_> = (0..s.concurrency)
        .map(|_| {
            let (pool, next) = (pool.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let run = uuid::Uuid::now_v7();
                    for step in ["one", "two", "three"] {
                        let mut tx = pool.begin().await?;
                        sqlx::query("insert into selftest.effects (run_id, step) values ($1, $2)")
                            .bind(run)
                            .bind(step)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("insert into selftest.floor_steps (run_id, step, output) values ($1, $2, 'null')")
                            .bind(run)
                            .bind(step)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                    }
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    print_cpu("sql_floor", cpu, n);
    sqlx::query("truncate selftest.effects, selftest.floor_steps").execute(&pool).await?;
    pool.close().await;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// One step's effect row, as the engine's bench steps write it.
async fn effect(pool: &PgPool, run: uuid::Uuid, step: &str) -> Result<uuid::Uuid, BoxDynError> {
    sqlx::query("insert into selftest.effects (run_id, step) values ($1, $2)")
        .bind(run)
        .bind(step)
        .execute(pool)
        .await?;
    Ok(run)
}

/// A baseline's worker running on its own task.
struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Spawns `run` (a worker's `run_until`) with a signal that fires on `stop`.
fn spawn_worker<Fut>(run: impl FnOnce(BoxFuture<'static, Result<(), std::io::Error>>) -> Fut) -> RunningWorker
where
    Fut: Future + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = run(Box::pin(async move {
        let _ = stopped.await;
        Ok(())
    }));
    RunningWorker { stop, task: tokio::spawn(async move { let _ = running.await; }) }
}

impl RunningWorker {
    /// Signals the worker and waits (at most 10 s) for it to exit.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}
