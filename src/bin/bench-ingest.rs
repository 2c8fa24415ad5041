//! `just bench-ingest`: signed Stripe webhooks at 32 concurrent connections
//! against the release `relevo` binary for a fixed time, next to `pgbench`
//! doing the same inserts (event + run + queue job, one transaction per
//! webhook, 32 clients) on the same database in the same invocation. Two
//! sides: an API-only node (`RELEVO_RUN_WORKERS=0`, the same work as
//! pgbench: `ingest_vs_pgbench=`), then a node as `cargo run --release` starts
//! it, executing the runs the webhooks start while acknowledging more
//! (`ingest_full_node_vs_pgbench=`, `ack_p99_ms=`, and how many of its runs
//! it finished meanwhile: `full_node_runs_succeeded=`). pgbench's own
//! transaction latency (`pgbench_p99_ms=`, from its per-transaction log) is the
//! baseline for the acks' tail (`ack_p99_vs_pgbench_p99=`). One request in 20
//! repeats the previous event, as a provider retrying would.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use relevo::{
    db::{self, cluster::Options, PrivateCluster},
    providers::stripe::verify::sign,
};
use tokio::sync::Mutex;

const SECRET: &str = "whsec_bench";

#[derive(Parser)]
struct Args {
    /// Seconds each side runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections / pgbench clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = PrivateCluster::start(&PathBuf::from("target/bench-pg"), None, &Options::default())?;
    db::create_database_if_missing(&cluster.connect_options("postgres"), "bench_ingest").await?;
    let options = cluster.connect_options("bench_ingest");
    let setup = db::pool(options.clone(), 2).await?;
    db::migrate(&setup).await?;
    sqlx::query("truncate inbound_events, engine.runs cascade").execute(&setup).await?;
    sqlx::query("delete from apalis.jobs").execute(&setup).await?;
    sqlx::query("vacuum analyze").execute(&setup).await?;

    // Baseline first: pgbench, same rows per transaction, 32 clients.
    let pgbench = pgbench(&cluster, args.clients, args.seconds)?;
    let tps = pgbench.tps;
    sqlx::query("truncate inbound_events, engine.runs cascade").execute(&setup).await?;
    sqlx::query("delete from apalis.jobs").execute(&setup).await?;
    sqlx::query("vacuum analyze").execute(&setup).await?;

    // The release binary, API only (no workers), so both sides do the same work.
    let api_only = drive(&cluster, &args, false).await?;
    let api_only = api_only.checked(&setup).await?;
    sqlx::query("truncate inbound_events, engine.runs cascade").execute(&setup).await?;
    sqlx::query("delete from apalis.jobs").execute(&setup).await?;
    sqlx::query("vacuum analyze").execute(&setup).await?;
    // Then as `cargo run --release` starts it: workers on, executing the runs
    // the webhooks start while it acknowledges more.
    let full = drive(&cluster, &args, true).await?;
    let full = full.checked(&setup).await?;
    // Acks come first (`Engine::foreground`): how far execution kept up meanwhile.
    let (runs, succeeded): (i64, i64) =
        sqlx::query_as("select count(*), count(*) filter (where status = 'succeeded') from engine.runs")
            .fetch_one(&setup)
            .await?;
    setup.close().await;
    cluster.stop()?;

    println!("clients={} seconds={} fsync=on duplicates=1/{DUPLICATE_EVERY}", args.clients, args.seconds);
    println!("pgbench_tps={tps:.0}");
    println!("pgbench_p50_ms={:.2}", pgbench.p50_ms);
    println!("pgbench_p99_ms={:.2}", pgbench.p99_ms);
    println!("api_only: accepted={} errors={} stored_check=ok", api_only.unique, api_only.errors);
    println!("accepted_per_sec={:.0}", api_only.rate);
    println!("api_only_ack_p50_ms={:.2}", api_only.p50_ms);
    println!("api_only_ack_p99_ms={:.2}", api_only.p99_ms);
    println!("ingest_vs_pgbench={:.2}", api_only.rate / tps);
    println!("full_node: accepted={} errors={} stored_check=ok", full.unique, full.errors);
    println!("full_node_accepted_per_sec={:.0}", full.rate);
    println!("ack_p50_ms={:.2}", full.p50_ms);
    println!("ack_p99_ms={:.2}", full.p99_ms);
    println!("ack_p99_vs_pgbench_p99={:.2}", full.p99_ms / pgbench.p99_ms);
    println!("ingest_full_node_vs_pgbench={:.2}", full.rate / tps);
    println!("full_node_runs_succeeded={succeeded} of {runs}");
    Ok(())
}

/// Every this many requests a client resends its previous event (a provider
/// retrying a slow answer): answered 200 `duplicate`, stored once.
const DUPLICATE_EVERY: u64 = 20;

/// What one side of the bench saw.
struct Drive {
    /// Event ids answered 200 (a duplicate's id again).
    accepted: Vec<String>,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

/// Figures after checking that every accepted event is stored.
struct Figures {
    unique: usize,
    errors: usize,
    /// Requests answered 200 per second (duplicates included).
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Drive {
    async fn checked(mut self, pool: &sqlx::PgPool) -> anyhow::Result<Figures> {
        let rate = self.accepted.len() as f64 / self.elapsed.as_secs_f64();
        self.accepted.sort();
        self.accepted.dedup();
        let stored: i64 = sqlx::query_scalar(
            "select count(*) from inbound_events where provider = 'stripe' and dedupe_key = any($1)",
        )
        .bind(&self.accepted)
        .fetch_one(pool)
        .await?;
        anyhow::ensure!(stored as usize == self.accepted.len(), "{} accepted but {stored} stored", self.accepted.len());
        self.latencies.sort();
        let (p50_ms, p99_ms) = (percentile_ms(&self.latencies, 0.50), percentile_ms(&self.latencies, 0.99));
        Ok(Figures { unique: self.accepted.len(), errors: self.errors, rate, p50_ms, p99_ms })
    }
}

/// Starts the release binary (`workers` on or off) and drives signed Stripe
/// webhooks at it from `args.clients` connections for `args.seconds`.
async fn drive(cluster: &PrivateCluster, args: &Args, workers: bool) -> anyhow::Result<Drive> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?.with_file_name("relevo");
    let mut relevo = tokio::process::Command::new(&exe)
        .env("DATABASE_URL", cluster.url("bench_ingest"))
        .env("RELEVO_ADDR", format!("127.0.0.1:{port}"))
        .env("RELEVO_ADMIN_TOKEN", "bench-admin-token-0123456789abcdef")
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("RELEVO_RUN_WORKERS", if workers { "1" } else { "0" })
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build()?;
    let base = format!("http://127.0.0.1:{port}");
    let ready = Instant::now();
    while client.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        anyhow::ensure!(ready.elapsed() < Duration::from_secs(30), "relevo did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let side = if workers { "full" } else { "api" };
    let tasks: Vec<_> = (0..args.clients)
        .map(|c| {
            let (client, url) = (client.clone(), format!("{base}/webhooks/stripe"));
            let (accepted, latencies, errors) = (accepted.clone(), latencies.clone(), errors.clone());
            tokio::spawn(async move {
                let (mut ok, mut lat) = (Vec::new(), Vec::new());
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    // Every DUPLICATE_EVERY-th request repeats the one before.
                    let n = if i % DUPLICATE_EVERY == 0 { i - 1 } else { i };
                    let id = format!("evt_bench_{side}_{c}_{n}");
                    let body = event_body(&id);
                    let signature = sign(SECRET, chrono::Utc::now().timestamp(), body.as_bytes());
                    let sent = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("Stripe-Signature", signature)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            lat.push(sent.elapsed());
                            ok.push(id);
                        }
                        _ => {
                            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                accepted.lock().await.extend(ok);
                latencies.lock().await.extend(lat);
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    relevo.start_kill()?;
    let _ = relevo.wait().await;
    let accepted = accepted.lock().await.clone();
    let latencies = latencies.lock().await.clone();
    Ok(Drive { accepted, latencies, errors: errors.load(std::sync::atomic::Ordering::Relaxed), elapsed })
}

fn event_body(id: &str) -> String {
    serde_json::json!({"id": id, "object": "event", "api_version": "2026-07-29.dahlia", "created": 1750000000,
        "livemode": false, "pending_webhooks": 1, "type": "payment_intent.succeeded",
        "request": {"id": "req_1", "idempotency_key": "k-123"},
        "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "amount": 11748,
                            "currency": "mxn", "metadata": {"order_id": "0193a5b2-0000-7000-8000-000000000001"}}}})
    .to_string()
}

/// What pgbench measured: its rate, and the latency of its transactions
/// (the same closed loop of 32 clients as the webhooks, so the tail the
/// machine and the database give any client here).
struct Pgbench {
    tps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs pgbench with one transaction per webhook: the event row (same body
/// size), its run, and its queue job (same tables, indexes and trigger).
fn pgbench(cluster: &PrivateCluster, clients: usize, seconds: u64) -> anyhow::Result<Pgbench> {
    let body = event_body("evt_pgbench").replace('\'', "''");
    let script = format!(
        "BEGIN;\n\
         WITH r AS (INSERT INTO engine.runs (id, workflow, input) \
                    VALUES (gen_random_uuid(), 'inbound_event', '{{\"provider\":\"pgbench\"}}') RETURNING id) \
         INSERT INTO inbound_events (id, provider, dedupe_key, provider_event_id, type, headers, body, payload, run_id) \
         SELECT gen_random_uuid(), 'pgbench', gen_random_uuid()::text, 'evt', 'payment_intent.succeeded', \
                '{{\"content-type\":\"application/json\"}}', '{body}', '{body}'::jsonb, r.id FROM r;\n\
         INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority) \
           VALUES (gen_random_uuid()::text, 'relevo.pgbench', '\\x7b7d', 'Pending', 0, 25, now(), 0);\n\
         END;\n"
    );
    let dir = std::env::temp_dir().join(format!("relevo-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("script.sql");
    std::fs::write(&path, script)?;
    let bin = ["/usr/bin/pgbench"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("pgbench");
    let out = std::process::Command::new(bin)
        .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), "-l", "-f"])
        .arg(&path)
        .arg(format!("--log-prefix={}", dir.join("log").display()))
        .args(["-h"])
        .arg(cluster.socket_dir())
        .args(["-U", "relevo", "bench_ingest"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}"))?;
    // One log line per transaction: client, transaction, latency in µs, ...
    let mut latencies: Vec<Duration> = Vec::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("log.") {
            let log = std::fs::read_to_string(entry.path())?;
            latencies.extend(log.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse().ok()).map(Duration::from_micros));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    anyhow::ensure!(!latencies.is_empty(), "pgbench wrote no transaction log");
    latencies.sort_unstable();
    Ok(Pgbench { tps, p50_ms: percentile_ms(&latencies, 0.50), p99_ms: percentile_ms(&latencies, 0.99) })
}

/// The `q` quantile of `sorted`, in ms (0 when empty): webhooks and pgbench alike.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
