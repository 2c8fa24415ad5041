//! `just bench-deliver`: outbound delivery throughput and latency, next to
//! `pgbench` (32 clients, one transaction of two inserts: an event row and a
//! 1 KB payload row) on the same database in the same invocation.
//!
//! Phase 1 publishes N events (default 20,000) to 4 local subscribers that
//! answer 200 at once and prints deliveries/s from first publish to last
//! arrival. Phase 2 publishes a steady rate (default 200 events/s for 60 s) and
//! prints p50/p95/p99 publish→delivered latency.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use poem::{handler, listener::{Acceptor, Listener, TcpListener}, web::Data, EndpointExt, Request, Route, Server};
use relevo::{
    config::Settings,
    db::{self, cluster::Options, PrivateCluster},
    engine::Registry,
    outbound::{ssrf::AllowNets, subscriptions},
    startup::Application,
};
use secrecy::SecretString;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 200)]
    rate: u64,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u64,
}

type Arrivals = Arc<Mutex<HashMap<(String, u16), Instant>>>;

#[handler]
fn receive(req: &Request, arrivals: Data<&(Arrivals, u16)>) -> &'static str {
    if let Some(id) = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()) {
        arrivals.0 .0.lock().unwrap().entry((id.to_owned(), arrivals.0 .1)).or_insert_with(Instant::now);
    }
    "ok"
}

async fn start_receiver(arrivals: Arrivals) -> anyhow::Result<SocketAddr> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let app = Route::new().at("/hook", poem::post(receive)).data((arrivals, addr.port()));
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Ok(addr)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = PrivateCluster::start(&std::path::PathBuf::from("target/bench-pg"), None, &Options::default())?;
    db::create_database_if_missing(&cluster.connect_options("postgres"), "bench_deliver").await?;
    let pool = db::pool(cluster.connect_options("bench_deliver"), 8).await?;
    db::migrate(&pool).await?;
    sqlx::query("truncate outbox_events, subscriptions cascade").execute(&pool).await?;

    let tps = pgbench(&cluster, &pool, args.pgbench_seconds).await?;

    let mut settings = Settings::from_env()?; // RELEVO_OUTBOUND_* tuning applies
    settings.database_url = Some(SecretString::from(cluster.url("bench_deliver")));
    settings.addr = "127.0.0.1:0".parse()?;
    settings.admin_token = Some(SecretString::from("bench-admin-token-0123456789abcdef"));
    settings.outbound.allow_nets = AllowNets::parse("127.0.0.0/8").map_err(anyhow::Error::msg)?;
    // A fixed key: the bench's database outlives runs, so its sealed keys must open next time.
    settings.secret_key = Some(SecretString::from("YmVuY2gtZGVsaXZlci1zZWFsaW5nLWtleS0wMTIzNDU="));
    let sealer = relevo::sealing::Sealer::load(settings.secret_key.as_ref(), &settings.data_dir)?;
    let arrivals: Arrivals = Arc::default();
    let mut ports = vec![];
    for _ in 0..4 {
        let addr = start_receiver(arrivals.clone()).await?;
        ports.push(addr.port());
        let url = format!("http://{addr}/hook");
        let types = vec!["*".to_string()];
        let new = subscriptions::NewSubscription { url: &url, event_types: &types, description: None, rate_limit_per_sec: None };
        subscriptions::create(&pool, &sealer, &new).await?;
    }
    let app = Application::build(settings, Registry::new()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // Phase 1: a burst.
    let started = Instant::now();
    let mut published = 0;
    while published < args.events {
        let n = (args.events - published).min(1000) as i64;
        sqlx::query(
            "insert into outbox_events (id, type, payload, source)
             select gen_random_uuid(), 'bench.burst', jsonb_build_object('n', g, 'pad', repeat('x', 900)), 'api'
               from generate_series(1, $1) g",
        )
        .bind(n)
        .execute(&pool)
        .await?;
        published += n as usize;
    }
    let expected = args.events * 4;
    while arrivals.lock().unwrap().len() < expected {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "phase 1 did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = arrivals.lock().unwrap().values().max().copied().unwrap();
    let burst_rate = expected as f64 / (last - started).as_secs_f64();
    arrivals.lock().unwrap().clear();

    // Phase 2: a steady rate.
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    let phase2 = Instant::now();
    while phase2.elapsed() < Duration::from_secs(args.seconds) {
        tick.tick().await;
        let id = Uuid::now_v7();
        let at = Instant::now();
        sqlx::query("insert into outbox_events (id, type, payload, source) values ($1, 'bench.steady', jsonb_build_object('pad', repeat('x', 900)), 'api')")
            .bind(id)
            .execute(&pool)
            .await?;
        sent.insert(id.to_string(), at);
    }
    let wait_from = Instant::now();
    while arrivals.lock().unwrap().len() < sent.len() * 4 && wait_from.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies: Vec<Duration> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|((id, _), at)| sent.get(id).map(|s| at.saturating_duration_since(*s)))
        .collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0;
    let missing = sent.len() * 4 - latencies.len();

    let _ = stop.send(());
    let _ = serving.await;
    pool.close().await;
    cluster.stop()?;

    println!("phase1: {} events x 4 subscribers = {expected} deliveries", args.events);
    println!("deliveries_per_sec={burst_rate:.0}");
    println!("phase2: {} events/s for {} s, {} deliveries, {missing} missing", args.rate, args.seconds, latencies.len());
    println!("p50_ms={:.2} p99_ms={:.2}", pct(0.50), pct(0.99));
    println!("pgbench_tps={tps:.0}");
    println!("deliver_vs_pgbench={:.2}", burst_rate / tps);
    println!("p95_ms={:.1}", pct(0.95));
    Ok(())
}

async fn pgbench(cluster: &PrivateCluster, pool: &sqlx::PgPool, seconds: u64) -> anyhow::Result<f64> {
    sqlx::query("create table if not exists bench_events (id uuid primary key, type text not null, created_at timestamptz not null default now())")
        .execute(pool)
        .await?;
    sqlx::query("create table if not exists bench_payloads (event_id uuid primary key, payload text not null)")
        .execute(pool)
        .await?;
    sqlx::query("truncate bench_events, bench_payloads").execute(pool).await?;
    let script = "BEGIN;\n\
        INSERT INTO bench_events (id, type) VALUES (gen_random_uuid(), 'bench');\n\
        INSERT INTO bench_payloads (event_id, payload) VALUES (gen_random_uuid(), repeat('x', 1024));\n\
        END;\n";
    let path = std::env::temp_dir().join(format!("relevo-deliver-{}.sql", std::process::id()));
    std::fs::write(&path, script)?;
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-c", "32", "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&path)
        .arg("-h")
        .arg(cluster.socket_dir())
        .args(["-U", "relevo", "bench_deliver"])
        .output()?;
    anyhow::ensure!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}"))
}
