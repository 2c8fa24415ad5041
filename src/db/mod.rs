//! Database access: the pool, the private cluster, and migrations.

pub mod cluster;
pub mod page;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgPool,
};

use crate::config::Settings;
pub use cluster::PrivateCluster;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    BadUrl(sqlx::Error),
    #[error("cannot reach Postgres: {0}")]
    Connect(sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(String),
}

/// Whether Postgres refused a statement for the values in it (SQLSTATE class
/// 22 data exception, 23 integrity constraint violation, 54 program limit
/// exceeded) rather than because it is unreachable, busy or shutting down:
/// only the former can be one row's fault, so only then is a batch worth
/// retrying row by row.
pub fn refuses_values(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else { return false };
    db.code().is_some_and(|code| ["22", "23", "54"].iter().any(|class| code.starts_with(class)))
}

/// One round trip: whether the database answers.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1").execute(pool).await.map(drop)
}

/// The database the service runs on, and the private cluster behind it if any.
pub struct Database {
    pub pool: PgPool,
    pub options: PgConnectOptions,
    pub cluster: Option<PrivateCluster>,
}

/// Connects to `DATABASE_URL`, or starts the private cluster and creates its
/// `relevo` database on first use.
pub async fn open(settings: &Settings) -> Result<Database, Error> {
    let (options, cluster) = match &settings.database_url {
        Some(url) => {
            let options: PgConnectOptions =
                url.expose_secret().parse().map_err(Error::BadUrl)?;
            (options, None)
        }
        None => {
            let dir = settings.data_dir.clone();
            let bin = settings.pg_bin.clone();
            let cluster = tokio::task::spawn_blocking(move || {
                PrivateCluster::start(&dir, bin.as_deref(), &cluster::Options::default())
            })
            .await
            .expect("cluster start task panicked")?;
            create_database_if_missing(&cluster.connect_options("postgres"), "relevo").await?;
            (cluster.connect_options("relevo"), Some(cluster))
        }
    };
    let pool = pool(options.clone(), settings.db_pool_size).await?;
    Ok(Database {
        pool,
        options,
        cluster,
    })
}

/// A pool whose connections are checked on acquire after an outage, and commit
/// synchronously whatever the server's default: a webhook answered 2xx and a
/// completed step must survive a crash, even on a database tuned with
/// `synchronous_commit=off`.
pub async fn pool(options: PgConnectOptions, max: u32) -> Result<PgPool, Error> {
    let options = options.options([("synchronous_commit", "on")]);
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
        .await
        .map_err(Error::Connect)
}

/// `CREATE DATABASE name` unless it exists; `admin` points at another database.
pub async fn create_database_if_missing(admin: &PgConnectOptions, name: &str) -> Result<(), Error> {
    let mut conn = sqlx::PgConnection::connect_with(admin).await.map_err(Error::Connect)?;
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(Error::Connect)?;
    if !exists {
        let sql = format!("create database \"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.map_err(Error::Connect)?;
    }
    conn.close().await.ok();
    Ok(())
}

/// Runs apalis-postgres's migrations (its own history table in schema `apalis`)
/// and then Relevo's.
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    apalis_postgres::PostgresStorage::setup(pool)
        .await
        .map_err(|e| Error::Migrate(format!("apalis: {e}")))?;
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .map_err(|e| Error::Migrate(e.to_string()))?;
    Ok(())
}
