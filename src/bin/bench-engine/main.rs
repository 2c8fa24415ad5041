//! `just bench-engine`: engine throughput against plain apalis-postgres, on the
//! same database in the same invocation.
//!
//! Baselines: N no-op apalis jobs drained by one worker with the engine's
//! worker settings; and the same three steps written with apalis-workflow 1.0
//! on apalis-postgres (a sequential flow, each step inserting the same effect
//! row as the engine's), N flows started before the worker, timed from the
//! worker's start to the last step's ack. Engine: N runs of `selftest.bench` (three database steps, each
//! writing one row with its checkpoint), each created in its own transaction
//! as a webhook would. Prints jobs/s, runs/s, and Postgres commits per run,
//! creation included: every commit (`pg_stat_database.xact_commit` deltas,
//! read-only transactions too) and those that wrote (transaction ids assigned).
//!
//! Floor: the same three steps' SQL (effect and checkpoint rows, one
//! transaction per step) sent straight from `concurrency` tasks, with no
//! queue, claim or status: `engine_vs_sql_floor=` says how much of what the
//! database can do here the engine keeps.
//!
//! CPU: each phase also prints the CPU it used per run (`*_db_cpu_ms_per_run`:
//! every `postgres` process, exited backends included; `*_client_cpu_ms_per_run`:
//! this process). Both sides share the machine's two cores, so where the
//! engine's throughput goes is where its CPU goes. `--steps 0..3` runs the
//! engine phase alone with fewer steps, to tell a run's fixed cost from a step's.
//!
//! Latency: runs created at a steady `--rate` per second for `--latency-seconds`
//! while the workers run; prints the median and 99th percentile from creation
//! to `succeeded` (`run_p50_ms=`, `run_p99_ms=`).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use relevo::{
    config::EngineSettings,
    db::{self, cluster::Options, PrivateCluster},
    engine::{Engine, Registry, Workers},
    workflows::selftest,
};
use sqlx::{postgres::PgConnectOptions, PgPool};

mod baselines;
mod cpu;

use baselines::{bench_apalis_noop, bench_apalis_workflow, bench_sql_floor};
use cpu::{cpu_ms, print_cpu};

#[derive(Parser)]
struct Args {
    /// Runs (and baseline jobs).
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Worker concurrency and batch size, for both the baseline and the engine.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Latency phase: runs created per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Latency phase: how long runs are created (0 skips the phase).
    #[arg(long, default_value_t = 30)]
    latency_seconds: u64,
    /// Engine phase only, with `selftest.steps` (three plain steps, each
    /// writing its effect outside its checkpoint) instead of three `tx_step`s.
    #[arg(long)]
    plain_steps: bool,
    /// Engine phase only, with `selftest.bench` doing this many of its three
    /// `tx_step`s (0 measures what a run costs besides its steps).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=3), conflicts_with = "plain_steps")]
    steps: Option<u32>,
    /// Worker poll interval in ms (the engine's default when unset).
    #[arg(long)]
    poll_ms: Option<u64>,
    /// Use this database instead of a private fsync-on cluster in target/bench-pg.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (options, cluster) = match &args.database_url {
        Some(url) => (url.parse::<PgConnectOptions>()?, None),
        None => {
            let dir = std::path::PathBuf::from("target/bench-pg");
            let cluster = PrivateCluster::start(&dir, None, &Options::default())?;
            db::create_database_if_missing(&cluster.connect_options("postgres"), "bench").await?;
            (cluster.connect_options("bench"), Some(cluster))
        }
    };
    let setup = db::pool(options.clone(), 4).await?;
    db::migrate(&setup).await?;
    sqlx::query("truncate engine.runs cascade").execute(&setup).await?;
    sqlx::query("truncate selftest.effects").execute(&setup).await?;
    sqlx::query("delete from apalis.jobs").execute(&setup).await?;
    sqlx::query("delete from apalis.workers").execute(&setup).await?;
    sqlx::query("vacuum analyze").execute(&setup).await?;
    setup.close().await;

    let settings = EngineSettings {
        concurrency: args.concurrency,
        batch_size: args.concurrency,
        ..EngineSettings::default()
    };
    let settings = match args.poll_ms {
        Some(ms) => EngineSettings { poll_interval: Duration::from_millis(ms), ..settings },
        None => settings,
    };
    println!(
        "workload: {} runs/jobs; worker concurrency {} batch {}; fsync on",
        args.runs, settings.concurrency, settings.batch_size
    );

    let engine_only = match (args.plain_steps, args.steps) {
        (true, _) => Some((Workload::PlainSteps, "engine_3plain_step_runs_per_sec".to_owned())),
        (false, Some(steps)) => Some((Workload::TxSteps(steps), format!("engine_{steps}step_runs_per_sec"))),
        (false, None) => None,
    };
    if let Some((workload, figure)) = engine_only {
        let engine = bench_engine(&options, &settings, args.runs, workload).await?;
        println!("{figure}={:.0}", engine.runs_per_sec);
        println!("commits_per_run={:.1}", engine.commits_per_run);
        println!("write_commits_per_run={:.2}", engine.write_commits_per_run);
        if let Some(cluster) = cluster {
            cluster.stop()?;
        }
        return Ok(());
    }
    let baseline = bench_apalis_noop(&options, &settings, args.runs).await?;
    println!("apalis_noop_jobs_per_sec={baseline:.0}");
    let flows = bench_apalis_workflow(&options, &settings, args.runs).await?;
    println!("apalis_workflow_3step_flows_per_sec={flows:.0}");
    let floor = bench_sql_floor(&options, &settings, args.runs).await?;
    println!("sql_floor_3step_runs_per_sec={floor:.0}");
    let engine = bench_engine(&options, &settings, args.runs, Workload::TxSteps(3)).await?;
    let runs_per_sec = engine.runs_per_sec;
    println!("engine_3step_runs_per_sec={runs_per_sec:.0}");
    println!("engine_vs_apalis={:.2}", runs_per_sec / baseline);
    println!("engine_vs_apalis_workflow={:.2}", runs_per_sec / flows);
    println!("engine_vs_sql_floor={:.2}", runs_per_sec / floor);
    println!("commits_per_run={:.1}", engine.commits_per_run);
    println!("write_commits_per_run={:.2}", engine.write_commits_per_run);
    if args.latency_seconds > 0 {
        let (p50, p99) = bench_latency(&options, &settings, args.rate, args.latency_seconds).await?;
        println!("latency_workload: {} runs/s for {} s", args.rate, args.latency_seconds);
        println!("run_p50_ms={p50:.1}");
        println!("run_p99_ms={p99:.1}");
    }
    if let Some(cluster) = cluster {
        cluster.stop()?;
    }
    Ok(())
}

/// What the engine phase measured.
struct EngineFigures {
    runs_per_sec: f64,
    /// Every committed transaction (`pg_stat_database.xact_commit`), read-only ones included.
    commits_per_run: f64,
    /// Transactions that wrote (transaction ids assigned): the commits that reach the WAL.
    write_commits_per_run: f64,
}

/// What each engine run does.
#[derive(Clone, Copy)]
enum Workload {
    /// `selftest.bench`: this many `tx_step`s.
    TxSteps(u32),
    /// `selftest.steps`: three plain steps.
    PlainSteps,
}

impl Workload {
    fn effects_per_run(self) -> usize {
        match self {
            Workload::TxSteps(steps) => steps as usize,
            Workload::PlainSteps => 3,
        }
    }
}

async fn bench_engine(options: &PgConnectOptions, s: &EngineSettings, n: usize, workload: Workload) -> anyhow::Result<EngineFigures> {
    let observer = db::pool(options.clone(), 1).await?;
    let commits_before = xact_commit(&observer).await?;
    let xids_before = next_xid(&observer).await?;
    let pool = db::pool(options.clone(), 40).await?;
    let engine = Engine::new(pool.clone(), selftest::register(Registry::new()), s.clone());

    // Creation: one transaction per run, 32 at a time, as ingest would.
    let created = Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = (0..32)
        .map(|_| {
            let (engine, created) = (engine.clone(), created.clone());
            tokio::spawn(async move {
                while created.fetch_add(1, Ordering::Relaxed) < n {
                    match workload {
                        Workload::PlainSteps => {
                            engine.start::<selftest::Steps>(&serde_json::from_value(serde_json::json!({})).unwrap()).await.unwrap();
                        }
                        Workload::TxSteps(steps) => {
                            engine.start::<selftest::Bench>(&selftest::BenchInput { steps }).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for c in creators {
        c.await?;
    }

    let cpu = cpu_ms();
    let started = Instant::now();
    let workers = Workers::start(engine.clone());
    let mut polls = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        polls += 1;
        let succeeded: i64 = sqlx::query_scalar("select count(*) from engine.runs where status = 'succeeded'")
            .fetch_one(&observer)
            .await?;
        if succeeded as usize >= n {
            break;
        }
    }
    let elapsed = started.elapsed();
    print_cpu("engine", cpu, n);
    workers.shutdown().await;
    pool.close().await;
    // Backends flush their statistics when they exit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let commits = xact_commit(&observer).await? - commits_before - polls as i64 - 1;
    let write_commits = next_xid(&observer).await? - xids_before;
    let rows: i64 = sqlx::query_scalar("select count(*) from selftest.effects").fetch_one(&observer).await?;
    let expected = workload.effects_per_run() * n;
    anyhow::ensure!(rows as usize == expected, "expected {expected} step rows, found {rows}");
    observer.close().await;
    Ok(EngineFigures {
        runs_per_sec: n as f64 / elapsed.as_secs_f64(),
        commits_per_run: commits as f64 / n as f64,
        write_commits_per_run: write_commits as f64 / n as f64,
    })
}

/// The next transaction id Postgres will assign (read without taking one).
async fn next_xid(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetch_one(pool).await?)
}

/// Runs created at a steady `rate` for `seconds` while the workers execute
/// them: the median and 99th percentile, in ms, from creation to `succeeded`.
async fn bench_latency(options: &PgConnectOptions, s: &EngineSettings, rate: u64, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let pool = db::pool(options.clone(), 40).await?;
    sqlx::query("truncate engine.runs cascade").execute(&pool).await?;
    let engine = Engine::new(pool.clone(), Registry::new().register(selftest::Bench), s.clone());
    let workers = Workers::start(engine.clone());
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut creations = tokio::task::JoinSet::new();
    for _ in 0..total {
        ticker.tick().await;
        let engine = engine.clone();
        creations.spawn(async move { engine.start::<selftest::Bench>(&selftest::BenchInput { steps: 3 }).await });
    }
    while let Some(created) = creations.join_next().await {
        created??;
    }
    loop {
        let succeeded: i64 = sqlx::query_scalar("select count(*) from engine.runs where status = 'succeeded'")
            .fetch_one(&pool)
            .await?;
        if succeeded as u64 >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.shutdown().await;
    let (p50, p99): (f64, f64) = sqlx::query_as(
        "select percentile_cont(0.5) within group (order by ms), percentile_cont(0.99) within group (order by ms)
           from (select extract(epoch from finished_at - created_at) * 1000 as ms from engine.runs) t",
    )
    .fetch_one(&pool)
    .await?;
    // Where the time goes: waiting for the queue to hand the run over, then executing it.
    let (pickup_p50, pickup_p99, exec_p99): (f64, f64, f64) = sqlx::query_as(
        "select percentile_cont(0.5) within group (order by pickup), percentile_cont(0.99) within group (order by pickup),
                percentile_cont(0.99) within group (order by exec)
           from (select extract(epoch from started_at - created_at) * 1000 as pickup,
                        extract(epoch from finished_at - started_at) * 1000 as exec from engine.runs) t",
    )
    .fetch_one(&pool)
    .await?;
    println!("run_pickup_p50_ms={pickup_p50:.1}");
    println!("run_pickup_p99_ms={pickup_p99:.1}");
    println!("run_execute_p99_ms={exec_p99:.1}");
    pool.close().await;
    Ok((p50, p99))
}

async fn xact_commit(pool: &PgPool) -> anyhow::Result<i64> {
    sqlx::query("select pg_stat_force_next_flush()").execute(pool).await.ok();
    Ok(sqlx::query_scalar("select xact_commit from pg_stat_database where datname = current_database()")
        .fetch_one(pool)
        .await?)
}
