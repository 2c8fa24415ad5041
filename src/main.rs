//! The `relevo` binary: serve (default), migrate, openapi, and ops commands.

use clap::{Parser, Subcommand};
use relevo::{cli, config::Settings, startup, telemetry, workflows};

#[derive(Parser)]
#[command(name = "relevo", version, about = "Durable workflows for webhook-driven integrations")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Run the service: HTTP API, webhook receivers and workflow workers (the default).
    /// Starts a private Postgres in $RELEVO_DATA_DIR/pg when DATABASE_URL is unset.
    Serve,
    /// Apply database migrations (Relevo's and apalis's) and exit.
    Migrate,
    /// Print the OpenAPI document to stdout.
    Openapi,
    /// Inspect and operate workflow runs through the API of a running Relevo.
    Runs(cli::RunsArgs),
    /// Read a password from stdin and print its argon2 hash for RELEVO_CONSOLE_USERS.
    HashPassword,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    let result = runtime.block_on(async move {
        match args.command.unwrap_or(Command::Serve) {
            Command::Serve => serve().await,
            Command::Migrate => migrate().await,
            Command::Openapi => {
                println!("{}", relevo::http::openapi_json());
                Ok(())
            }
            Command::Runs(runs) => cli::run(runs).await,
            Command::HashPassword => hash_password(),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    telemetry::init_tracing();
    // Before anything starts: a SIGTERM during start-up still shuts down cleanly.
    let shutdown = startup::shutdown_signal();
    let settings = Settings::from_env()?;
    let registry = workflows::registry(&settings)?;
    let app = startup::Application::build(settings, registry).await?;
    app.run_until(shutdown).await
}

async fn migrate() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let settings = Settings::from_env()?;
    let database = relevo::db::open(&settings).await?;
    relevo::db::migrate(&database.pool).await?;
    database.pool.close().await;
    if let Some(cluster) = database.cluster {
        cluster.stop()?;
    }
    tracing::info!("migrations applied");
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(password.len() >= 12, "use a password of at least 12 characters");
    let hash = relevo::console::session::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{hash}");
    Ok(())
}
