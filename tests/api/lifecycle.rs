//! The binary's own lifecycle: private Postgres on first start, reuse after
//! SIGKILL, recovery from a stale postmaster.pid, generated admin token, and a
//! graceful SIGTERM that stops Postgres and exits 0 within 10 s.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use crate::helpers::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn serve(data_dir: &Path, port: u16, log: &Path) -> Child {
    serve_with(data_dir, port, log, &[])
}

fn serve_with(data_dir: &Path, port: u16, log: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_relevo"))
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .env_remove("RELEVO_ADMIN_TOKEN")
        .env("RELEVO_DATA_DIR", data_dir)
        .env("RELEVO_ADDR", format!("127.0.0.1:{port}"))
        // Each registered workflow keeps one pooled LISTEN connection (apalis
        // pubsub), and the outbound worker one more: leave room for queries.
        .env("RELEVO_DB_POOL_SIZE", "16")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("pg/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only probes for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn the_private_cluster_survives_sigkill_and_stops_on_sigterm() {
    let dir = tempfile::Builder::new()
        .prefix("life")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let data = dir.path().join("d");
    let log = dir.path().join("relevo.log");
    let port = free_port();

    // First start: cluster created, token generated (0600), path logged, token not.
    let mut node = serve(&data, port, &log);
    wait_ready(port).await;
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let first_pg = postmaster_pid(&data).expect("private Postgres runs");

    // SIGKILL: Postgres outlives us; the next start adopts it.
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    assert!(alive(first_pg));
    let mut node = serve(&data, port, &log);
    wait_ready(port).await;
    assert_eq!(postmaster_pid(&data), Some(first_pg), "reused, not a second postmaster");
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/runs"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the stored token is reused");

    // Both die hard: a stale postmaster.pid must not stop the next start.
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    // SAFETY: plain kill(2) of the cluster we started.
    unsafe { libc::kill(first_pg, libc::SIGKILL) };
    wait_for("the old postmaster to die", Duration::from_secs(10), || async {
        (!alive(first_pg)).then_some(())
    })
    .await;
    let mut node = serve(&data, port, &log);
    wait_ready(port).await;
    let second_pg = postmaster_pid(&data).unwrap();
    assert_ne!(second_pg, first_pg);

    // SIGTERM: exit 0 within 10 s, Postgres stopped.
    let started = Instant::now();
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(node.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(10), node.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // pg_ctl returns once postmaster.pid is gone; the process ends just after.
    wait_for("private Postgres to stop", Duration::from_secs(5), || async {
        (!alive(second_pg)).then_some(())
    })
    .await;

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("admin-token"), "the token's path is logged");
    assert!(!logged.contains(token.trim()), "the token itself never is");
}

#[tokio::test]
async fn as_root_the_data_directory_is_made_enterable_and_a_blocking_ancestor_is_named() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return; // Only root hands the cluster to another user; nothing to check otherwise.
    }
    use relevo::db::cluster::{Error, Options, PrivateCluster};
    let dir = tempfile::Builder::new().prefix("perm").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    // An ancestor Relevo does not own the data directory of (as `mktemp -d` makes): named in the error.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::set_permissions(&blocked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = tokio::task::spawn_blocking({
        let data = blocked.join("data");
        move || PrivateCluster::start(&data, None, &Options::default()).unwrap_err()
    })
    .await
    .unwrap();
    assert!(matches!(&err, Error::Unreachable { dir, .. } if dir == &blocked), "{err}");
    assert!(err.to_string().contains("chmod o+x"), "{err}");

    // Relevo's own data directory, 0700 like `mktemp -d`: its mode is fixed and the cluster starts.
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cluster = tokio::task::spawn_blocking({
        let own = own.clone();
        move || PrivateCluster::start(&own, None, &Options { unsafe_fast: true }).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(std::fs::metadata(&own).unwrap().permissions().mode() & 0o777, 0o711);
    tokio::task::spawn_blocking(move || cluster.stop().unwrap()).await.unwrap();
}

#[tokio::test]
async fn a_fresh_node_exports_every_metric_queries_runs_at_most_every_15_s_and_never_logs_query_strings() {
    // Arrange: a new process (the metrics recorder is process-wide).
    let dir = tempfile::Builder::new().prefix("obs").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (data, log, port) = (dir.path().join("d"), dir.path().join("relevo.log"), free_port());
    let mut node = serve_with(&data, port, &log, &[("WHATSAPP_VERIFY_TOKEN", "verify-token-never-logged")]);
    wait_ready(port).await;
    let client = reqwest::Client::new();

    let socket = data.join("pg").to_string_lossy().replace('%', "%25").replace('/', "%2F");
    let pool = sqlx::PgPool::connect(&format!("postgres://relevo@{socket}/relevo")).await.unwrap();
    let failed_run = "insert into engine.runs (id, workflow, input, status, finished_at)
                      values (gen_random_uuid(), 'gauge.probe', '{}', 'failed', now())";
    sqlx::query(failed_run).execute(&pool).await.unwrap();
    let scrape = || async {
        client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap()
    };

    // Act: a scrape before any webhook, then Meta's handshake.
    let metrics = scrape().await;
    let handshake = client
        .get(format!(
            "http://127.0.0.1:{port}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-token-never-logged&hub.challenge=42"
        ))
        .send()
        .await
        .unwrap();

    // Assert: described and at 0 from the start, for every provider and outcome.
    for line in [
        "# TYPE relevo_webhooks_received_total counter",
        "# HELP relevo_webhooks_received_total",
        "relevo_webhooks_received_total{provider=\"stripe\",outcome=\"accepted\"} 0",
        "relevo_webhooks_received_total{provider=\"highlevel\",outcome=\"unavailable\"} 0",
        "relevo_run_attempts_total{workflow=\"inbound_event\",outcome=\"permanent\"} 0",
        "relevo_webhook_deliveries_total{status=\"failed\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert_eq!(handshake.text().await.unwrap(), "42");

    // Run gauges: scrapes query engine.runs at most every 15 s, however often they come.
    assert!(metrics.contains("relevo_runs{workflow=\"gauge.probe\",status=\"failed\"} 1"), "{metrics}");
    sqlx::query(failed_run).execute(&pool).await.unwrap();
    for _ in 0..20 {
        let again = scrape().await;
        assert!(again.contains("relevo_runs{workflow=\"gauge.probe\",status=\"failed\"} 1"), "refreshed within 15 s");
    }
    pool.close().await;

    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(node.id().unwrap() as i32, libc::SIGTERM) };
    tokio::time::timeout(Duration::from_secs(10), node.wait()).await.unwrap().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("/webhooks/whatsapp"), "requests are logged by path");
    assert!(!logged.contains("verify-token-never-logged"), "never the query string");
}
