//! Builds and runs the whole service: database, migrations, engine workers and
//! the HTTP server; shuts them down in order.

use std::{future::Future, net::SocketAddr, os::unix::fs::OpenOptionsExt, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use base64::Engine as _;
use poem::{
    listener::{Acceptor, AcceptorExt, Listener, TcpListener},
    Server,
};
use rand::RngCore;
use secrecy::SecretString;
use sqlx::PgPool;

use crate::{
    config::Settings,
    db::{self, PrivateCluster},
    engine::{self, Engine, Registry, Workers},
    http::{self, AppState},
};

/// A connection with no bytes moving for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A built, not yet serving, Relevo.
pub struct Application {
    acceptor: poem::listener::BoxAcceptor,
    local_addr: SocketAddr,
    run_workers: bool,
    outbound: crate::outbound::OutboundSettings,
    state: AppState,
    cluster: Option<PrivateCluster>,
}

impl Application {
    /// Opens the database (starting the private cluster if needed), migrates,
    /// resolves the admin token and binds the listener.
    pub async fn build(settings: Settings, registry: Registry) -> anyhow::Result<Self> {
        // Install the recorder before anything records a metric.
        let providers: Vec<&'static str> = crate::providers::Provider::ALL.iter().map(|p| p.as_str()).collect();
        crate::telemetry::describe_metrics(&registry.names().collect::<Vec<_>>(), &providers);
        let database = db::open(&settings).await?;
        db::migrate(&database.pool).await?;
        let admin_token = match &settings.admin_token {
            Some(t) => t.clone(),
            None => load_or_create_token(&settings.data_dir)?,
        };
        check_token_strength(&admin_token)?;
        let sealer = crate::sealing::Sealer::load(settings.secret_key.as_ref(), &settings.data_dir)?;
        sealer.check_against(&database.pool).await?;
        let sealed = crate::outbound::subscriptions::seal_legacy_keys(&database.pool, &sealer).await?;
        if sealed > 0 {
            tracing::info!(keys = sealed, "sealed outbound signing keys stored before they were sealed at rest");
        }
        let highlevel = crate::workflows::highlevel(&settings)?;
        let highlevel_keys = crate::providers::highlevel::verify::Keys::from_pem(
            settings.webhooks.highlevel_public_key_pem.as_deref(),
            settings.webhooks.highlevel_rsa_public_key_pem.as_deref(),
        )
        .context("HIGHLEVEL_WEBHOOK_PUBLIC_KEY / HIGHLEVEL_WEBHOOK_RSA_PUBLIC_KEY")?;
        // The engine's workers share one pooled LISTEN connection, the outbound
        // worker has one more; the rest serve requests and runs.
        let listeners = 2;
        if settings.run_workers && settings.db_pool_size < listeners + 3 {
            tracing::warn!(
                pool = settings.db_pool_size,
                listeners,
                "RELEVO_DB_POOL_SIZE leaves fewer than 3 connections beside the workers' listeners; requests may wait"
            );
        }
        let engine = Engine::new(database.pool.clone(), registry, settings.engine.clone());
        log_unconfigured_providers(&settings.webhooks);
        let ingest = crate::ingest::IngestWriter::spawn(
            engine.clone(),
            crate::workflows::entry_flow(),
            settings.webhooks.ingest_writers,
        );
        let acceptor = TcpListener::bind(settings.addr.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {}", settings.addr))?;
        let run_gauges = Arc::new(http::health::RunGauges::new(database.pool.clone()));
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no address")?;
        Ok(Self {
            acceptor: acceptor.boxed(),
            local_addr,
            run_workers: settings.run_workers,
            outbound: settings.outbound.clone(),
            state: AppState {
                pool: database.pool,
                engine,
                admin_token: Arc::new(admin_token),
                webhooks: Arc::new(settings.webhooks.clone()),
                highlevel_keys: Arc::new(highlevel_keys),
                highlevel,
                sync_flows: crate::workflows::sync_flows(),
                sealer,
                console: Arc::new(crate::console::ConsoleSettings {
                    users: settings.console_users.clone(),
                    timezone: settings.shop_timezone,
                }),
                run_gauges,
                outbound: Arc::new(settings.outbound.clone()),
                ingest,
            },
            cluster: database.cluster,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Serves until `shutdown` resolves, then stops taking work, lets in-flight
    /// runs finish (or releases them to other nodes), and stops the private
    /// Postgres. Bounded well under 10 s.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let workers = self.run_workers.then(|| Workers::start(self.state.engine.clone()));
        if workers.is_none() {
            tracing::info!("RELEVO_RUN_WORKERS is off: this node receives and serves, other nodes run workflows");
        }
        let (deliveries_stop, deliveries_stopped) = tokio::sync::watch::channel(false);
        let deliveries = self.run_workers.then(|| {
            let worker = Arc::new(crate::outbound::worker::Worker::new(self.state.pool.clone(), self.outbound.clone(), self.state.sealer.clone()));
            tokio::spawn(worker.run(deliveries_stopped))
        });
        let retention = spawn_retention(self.state.pool.clone(), self.state.engine.settings().retention);
        let names: Vec<_> = self.state.engine.registry().names().collect();
        tracing::info!(addr = %self.local_addr, workflows = ?names, "relevo is serving");
        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut http_stop = stop_tx.subscribe();
        // Idle connections (slowloris, forgotten keep-alives) are closed.
        let server = Server::new_with_acceptor(self.acceptor).idle_timeout(IDLE_TIMEOUT).run_with_graceful_shutdown(
            http::app(self.state.clone()),
            async move {
                let _ = http_stop.recv().await;
            },
            Some(Duration::from_secs(2)),
        );
        let server = tokio::spawn(server);
        shutdown.await;
        tracing::info!("shutting down: no new work; finishing in-flight runs");
        let _ = stop_tx.send(());
        retention.abort();
        let _ = deliveries_stop.send(true);
        // Both drain at once, so the whole shutdown stays well under 10 s.
        let stop_workers = async move {
            let runs = async {
                if let Some(workers) = workers {
                    workers.shutdown().await;
                }
            };
            let sends = async {
                if let Some(deliveries) = deliveries {
                    let _ = tokio::time::timeout(Duration::from_secs(6), deliveries).await;
                }
            };
            tokio::join!(runs, sends);
        };
        let (_, served) = tokio::join!(stop_workers, server);
        match served {
            Ok(Err(e)) => tracing::warn!(error.message = %e, "http server stopped with an error"),
            Err(e) => tracing::warn!(error.message = %e, "http server task failed"),
            Ok(Ok(())) => {}
        }
        if let Err(e) = engine::release_node_runs(&self.state.engine).await {
            tracing::warn!(error.message = %e, "could not release in-flight runs; their leases will expire");
        }
        self.state.pool.close().await;
        if let Some(cluster) = self.cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
            tracing::info!("private Postgres stopped");
        }
        Ok(())
    }
}

/// Every 10 minutes (first after one): prunes old runs, queue jobs and inbound
/// events, each cleanup independent of the others.
fn spawn_retention(pool: PgPool, retention: engine::retention::Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(600);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), every);
        loop {
            tick.tick().await;
            match engine::retention::prune(&pool, retention).await {
                Ok(p) if p != engine::retention::Pruned::default() => {
                    tracing::info!(runs = p.runs, jobs = p.jobs, "pruned old runs")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error.message = %e, "run retention pass failed"),
            }
            match crate::ingest::events::prune(&pool, retention.events).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned old inbound events"),
                Err(e) => tracing::warn!(error.message = %e, "event retention pass failed"),
            }
        }
    })
}

/// Says once, at start-up, which receivers will answer 503 `provider_not_configured`.
fn log_unconfigured_providers(w: &crate::config::WebhookSettings) {
    for (provider, missing, variable) in [
        ("stripe", w.stripe_secrets.is_empty(), "STRIPE_WEBHOOK_SECRET"),
        ("mercadopago", w.mercadopago_secret.is_none(), "MERCADOPAGO_WEBHOOK_SECRET"),
        ("whatsapp", w.whatsapp_app_secret.is_none(), "WHATSAPP_APP_SECRET"),
        ("whatsapp handshake", w.whatsapp_verify_token.is_none(), "WHATSAPP_VERIFY_TOKEN"),
    ] {
        if missing {
            tracing::warn!(provider, variable, "webhooks disabled (answer 503 provider_not_configured) until this is set");
        }
    }
}

/// Shortest admin token accepted: the generated ones are 43 characters.
const MIN_TOKEN_CHARS: usize = 32;

fn check_token_strength(token: &SecretString) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let chars = token.expose_secret().chars().count();
    anyhow::ensure!(
        chars >= MIN_TOKEN_CHARS,
        "the admin token (RELEVO_ADMIN_TOKEN or $RELEVO_DATA_DIR/admin-token) has {chars} characters; \
         use at least {MIN_TOKEN_CHARS}, e.g. `openssl rand -base64 32`"
    );
    Ok(())
}

/// Reads `<data_dir>/admin-token`, creating it (mode 0600) with a random token
/// on first start; an existing file readable by others is made 0600. Logs the
/// path, never the token.
fn load_or_create_token(data_dir: &Path) -> anyhow::Result<SecretString> {
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode != 0o600 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot make {} private", path.display()))?;
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the admin token file was not private; its mode is now 600");
            }
            tracing::info!(path = %path.display(), "admin token read from file");
            return Ok(SecretString::from(text.trim().to_owned()));
        }
        _ => {}
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    tracing::info!(path = %path.display(), "generated an admin token; it is stored in this file (mode 0600)");
    Ok(SecretString::from(token))
}

/// Installs the SIGINT and SIGTERM handlers now and resolves on either. Call
/// it before serving: a handler installed only when the future is first polled
/// leaves a window in which a signal takes the default action (the process
/// dies without its graceful shutdown) although the node already answers.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}
