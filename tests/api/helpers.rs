//! Shared test harness: one private Postgres cluster per test binary, a fresh
//! database per test (copied from a migrated template), and `spawn_app`.

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::OnceLock,
    time::Duration,
};

use relevo::{
    config::{EngineSettings, Settings},
    db::{self, cluster::Options, PrivateCluster},
    engine::Registry,
    startup::Application,
};
use secrecy::SecretString;
use sqlx::{postgres::PgConnectOptions, PgPool};

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";
/// RELEVO_SECRET_KEY of every test node (32 bytes, base64).
pub const SECRET_KEY: &str = "dGVzdC1zZWFsaW5nLWtleS0wMTIzNDU2Nzg5YWJjZGU=";

struct Cluster {
    inner: PrivateCluster,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Initialised on its own thread and runtime: tests each run their own runtime.
        std::thread::spawn(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let inner = PrivateCluster::start(&dir, None, &Options { unsafe_fast: true })
                .expect("test cluster starts");
            reap_when_tests_exit(&dir, &inner);
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                db::create_database_if_missing(&inner.connect_options("postgres"), "relevo_template")
                    .await
                    .unwrap();
                let pool = db::pool(inner.connect_options("relevo_template"), 2).await.unwrap();
                db::migrate(&pool).await.unwrap();
                pool.close().await;
            });
            Cluster { inner }
        })
        .join()
        .expect("cluster init thread")
    })
}

/// Stops the cluster (SIGQUIT: immediate shutdown) and deletes it once this test
/// process is gone, however it ends.
fn reap_when_tests_exit(dir: &std::path::Path, cluster: &PrivateCluster) {
    let pid_file = cluster.socket_dir().join("postmaster.pid");
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         kill -QUIT $(head -1 '{pid}') 2>/dev/null; sleep 2; rm -rf '{dir}'",
        me = std::process::id(),
        pid = pid_file.display(),
        dir = dir.display()
    );
    // Detached on purpose: it must outlive this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("reaper starts");
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let c = &cluster().inner;
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let admin = c.connect_options("postgres");
        let sql = format!("create database {name} template relevo_template");
        // Copying a template fails while another copy reads it; retry until it works.
        wait_for("the test database to be created", Duration::from_secs(30), || {
            let (admin, sql) = (admin.clone(), sql.clone());
            async move {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.ok()
            }
        })
        .await;
        let options = c.connect_options(&name);
        let pool = db::pool(options.clone(), 8).await.unwrap();
        Self {
            url: c.url(&name),
            name,
            options,
            pool,
        }
    }
}

/// Runs `sql` on the cluster's maintenance database (for ALTER DATABASE and such).
pub async fn admin_execute(sql: String) {
    let admin = cluster().inner.connect_options("postgres");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
}

/// The sealer of every test node (RELEVO_SECRET_KEY = `SECRET_KEY`).
pub fn sealer() -> relevo::sealing::Sealer {
    relevo::sealing::Sealer::load(Some(&SecretString::from(SECRET_KEY)), std::path::Path::new("unused")).unwrap()
}

/// Settings for an in-process app on `db`: port 0, fixed token, fast timings.
pub fn settings(db: &TestDb) -> Settings {
    let mut s = Settings::from_lookup(|_| None).unwrap();
    s.database_url = Some(SecretString::from(db.url.clone()));
    s.addr = "127.0.0.1:0".parse().unwrap();
    s.admin_token = Some(SecretString::from(TOKEN));
    s.secret_key = Some(SecretString::from(SECRET_KEY));
    s.data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unused-data-dir");
    // Each workflow's worker keeps a LISTEN connection (nine with the outbound worker).
    s.db_pool_size = 20;
    s.engine = fast_engine();
    s
}

pub fn fast_engine() -> EngineSettings {
    EngineSettings {
        concurrency: 16,
        batch_size: 16,
        lease: Duration::from_secs(3),
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 2,
        poll_interval: Duration::from_millis(200),
        sweep: Duration::from_secs(1),
        retention: Default::default(),
    }
}

/// A running in-process Relevo.
pub struct TestApp {
    pub addr: SocketAddr,
    pub engine: relevo::engine::Engine,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(db: &TestDb, registry: Registry) -> TestApp {
    spawn_app_with(settings(db), registry).await
}

pub async fn spawn_app_with(settings: Settings, registry: Registry) -> TestApp {
    let app = Application::build(settings, registry).await.expect("app builds");
    let addr = app.local_addr();
    let engine = app.engine().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        engine,
        client: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).bearer_auth(TOKEN)
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// An in-process Relevo with the real workflows (the shop's flows), on
/// `settings(db)` changed by `configure` (provider secrets, mock URLs, SMTP).
pub async fn shop(db: &TestDb, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut s = settings(db);
    configure(&mut s);
    let registry = relevo::workflows::registry(&s).unwrap();
    spawn_app_with(s, registry).await
}

/// The status of order `id`, read over the API.
pub async fn order_status(app: &TestApp, id: &str) -> String {
    let o: serde_json::Value = app.get(&format!("/api/v1/orders/{id}")).send().await.unwrap().json().await.unwrap();
    o["status"].as_str().unwrap().to_owned()
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let poll = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            if let Some(v) = check().await {
                return v;
            }
        }
    };
    tokio::time::timeout(limit, poll)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Waits until a Relevo listening on `port` answers `/readyz` with 200.
pub async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    wait_for("the service to be ready", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            let resp = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
            (resp.status() == 200).then_some(())
        }
    })
    .await
}

/// The status of a run, read from the database.
pub async fn run_status(pool: &PgPool, id: uuid::Uuid) -> String {
    sqlx::query_scalar("select status::text from engine.runs where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the run reaches `status`.
pub async fn wait_status(pool: &PgPool, id: uuid::Uuid, status: &str, limit: Duration) {
    wait_for(&format!("run {id} to be {status}"), limit, || async {
        (run_status(pool, id).await == status).then_some(())
    })
    .await
}

/// The step names logged by the self-test workflows for a run, in order.
pub async fn effects(db: &TestDb, id: uuid::Uuid) -> Vec<String> {
    sqlx::query_scalar("select step from selftest.effects where run_id = $1 order by id")
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}
