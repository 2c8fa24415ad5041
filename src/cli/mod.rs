//! `relevo runs …`: the ops API from the command line. Talks to a running
//! Relevo over HTTP with the admin token and prints what a person reads: a
//! table for lists, a block for one run, a line per action. `--json` prints
//! the API's JSON instead, for scripts.

mod render;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct RunsArgs {
    /// Base URL of the Relevo API.
    #[arg(long, env = "RELEVO_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Admin token; defaults to RELEVO_ADMIN_TOKEN, then $RELEVO_DATA_DIR/admin-token.
    #[arg(long, env = "RELEVO_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's JSON answer as is.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        /// pending, running, sleeping, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        /// Ordering key (e.g. an order id).
        #[arg(long)]
        key: Option<String>,
        /// Created at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Created before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = crate::http::page::DEFAULT_LIMIT)]
        limit: u32,
        /// `next_cursor` from the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one run with its steps, attempts and last error.
    Show { id: String },
    /// Retry one run (completed steps stay completed), or with --all every
    /// failed run matching the filters.
    Retry {
        /// The run to retry (omit with --all).
        id: Option<String>,
        /// Run at this RFC 3339 time instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Clear this step's checkpoint and all later ones; rerun from there.
        #[arg(long, conflicts_with = "all")]
        from_step: Option<String>,
        /// Bulk retry every run matching the filters below.
        #[arg(long)]
        all: bool,
        /// With --all: failed (default) or cancelled.
        #[arg(long, requires = "all")]
        status: Option<String>,
        #[arg(long, requires = "all")]
        workflow: Option<String>,
        #[arg(long, requires = "all")]
        key: Option<String>,
        #[arg(long, requires = "all")]
        since: Option<String>,
        #[arg(long, requires = "all")]
        until: Option<String>,
    },
    /// Cancel a run that has not finished.
    Cancel { id: String },
}

pub async fn run(args: RunsArgs) -> anyhow::Result<()> {
    let token = admin_token(args.token)?;
    let base = format!("{}/api/v1", args.url.trim_end_matches('/'));
    let shown = Shown::of(&args.command);
    let response = request(&reqwest::Client::new(), &base, args.command)?
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else if status.is_success() {
        print!("{}", render::render(shown, &body, chrono::Utc::now()));
    }
    if !status.is_success() {
        let error = &body["error"];
        anyhow::bail!(
            "the API answered {status}: {} ({})",
            error["message"].as_str().unwrap_or("no message"),
            error["code"].as_str().unwrap_or("no code")
        );
    }
    Ok(())
}

/// What kind of answer a command gets, for its human rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    List,
    Show,
    Retried,
    BulkRetried,
    Cancelled,
}

impl Shown {
    fn of(command: &RunsCommand) -> Self {
        match command {
            RunsCommand::List { .. } => Self::List,
            RunsCommand::Show { .. } => Self::Show,
            RunsCommand::Retry { all: true, .. } => Self::BulkRetried,
            RunsCommand::Retry { .. } => Self::Retried,
            RunsCommand::Cancel { .. } => Self::Cancelled,
        }
    }
}

/// `--token`, else the token file the server writes in its data directory.
fn admin_token(arg: Option<String>) -> anyhow::Result<String> {
    if let Some(token) = arg {
        return Ok(token);
    }
    let dir = PathBuf::from(std::env::var("RELEVO_DATA_DIR").unwrap_or_else(|_| "./.relevo".into()));
    let path = dir.join("admin-token");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("no --token, no RELEVO_ADMIN_TOKEN and cannot read {}", path.display()))?
        .trim()
        .to_owned())
}

/// The ops API call a command stands for (without its token).
fn request(client: &reqwest::Client, base: &str, command: RunsCommand) -> anyhow::Result<reqwest::RequestBuilder> {
    Ok(match command {
        RunsCommand::List { status, workflow, key, since, until, limit, cursor } => {
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (name, value) in [
                ("status", status),
                ("workflow", workflow),
                ("key", key),
                ("created_after", since),
                ("created_before", until),
                ("cursor", cursor),
            ] {
                if let Some(v) = value {
                    query.push((name, v));
                }
            }
            client.get(format!("{base}/runs")).query(&query)
        }
        RunsCommand::Show { id } => client.get(format!("{base}/runs/{id}")),
        RunsCommand::Retry { id, at, from_step, all, status, workflow, key, since, until } => {
            if all {
                let body = json!({
                    "status": status, "workflow": workflow, "key": key,
                    "created_after": since, "created_before": until, "at": at,
                });
                client.post(format!("{base}/runs/retry")).json(&strip_nulls(body))
            } else {
                let id = id.context("give a run id, or --all with filters")?;
                let body = json!({ "at": at, "from_step": from_step });
                client.post(format!("{base}/runs/{id}/retry")).json(&strip_nulls(body))
            }
        }
        RunsCommand::Cancel { id } => client.post(format!("{base}/runs/{id}/cancel")),
    })
}

fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, v| !v.is_null());
    }
    v
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        runs: RunsArgs,
    }

    fn built(args: &[&str]) -> anyhow::Result<reqwest::Request> {
        let cli = Cli::try_parse_from(std::iter::once("runs").chain(args.iter().copied()))?;
        Ok(request(&reqwest::Client::new(), "http://relevo/api/v1", cli.runs.command)?.build()?)
    }

    fn body(req: &reqwest::Request) -> Value {
        serde_json::from_slice(req.body().and_then(|b| b.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn list_sends_the_default_limit_and_only_the_filters_given() {
        let req = built(&["list", "--status", "failed", "--since", "2026-01-01T00:00:00Z"]).unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(
            req.url().as_str(),
            "http://relevo/api/v1/runs?limit=50&status=failed&created_after=2026-01-01T00%3A00%3A00Z"
        );
    }

    #[test]
    fn retry_posts_one_run_or_with_all_the_filters_without_nulls() {
        let one = built(&["retry", "r1", "--from-step", "charge"]).unwrap();
        assert_eq!((one.method().as_str(), one.url().path()), ("POST", "/api/v1/runs/r1/retry"));
        assert_eq!(body(&one), json!({"from_step": "charge"}));

        let all = built(&["retry", "--all", "--workflow", "email_delivery"]).unwrap();
        assert_eq!(all.url().path(), "/api/v1/runs/retry");
        assert_eq!(body(&all), json!({"workflow": "email_delivery"}));

        assert!(built(&["retry"]).is_err(), "neither an id nor --all");
    }
}
