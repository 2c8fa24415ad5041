//! The ops console in a real browser: Debian's chromium driven through
//! chromedriver (fantoccini) against the real app. A screenshot of each page
//! is written under `target/console-shots/` for review.

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::helpers::*;

/// chromedriver on a free port, and a headless browser session through it.
struct Browser {
    client: Client,
    _driver: Child,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (Debian: chromium-driver; .ci/run installs it)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = wait_for("chromedriver to take a session", Duration::from_secs(30), || {
            let (caps, url) = (caps.clone(), url.clone());
            async move {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await;
        Self { client, _driver: driver }
    }

    async fn shot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-shots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), self.client.screenshot().await.unwrap()).unwrap();
    }

    async fn text(&self) -> String {
        self.client.find(Locator::Css("main")).await.unwrap().text().await.unwrap()
    }

    /// Waits for the page (after a click that navigates) to show `expected`.
    async fn wait_text(&self, expected: &str) {
        wait_for(&format!("the page to show {expected:?}"), Duration::from_secs(20), || async {
            let main = self.client.find(Locator::Css("main")).await.ok()?;
            main.text().await.ok()?.contains(expected).then_some(())
        })
        .await
    }

    /// Labels on every visible field, headings that never skip a level.
    async fn assert_accessible(&self, page: &str) {
        let unlabelled = self
            .client
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]),select,textarea')]
                   .filter(e => !e.id || !document.querySelector('label[for=\"' + e.id + '\"]')).map(e => e.name);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(unlabelled, json!([]), "{page}: fields without a label");
        let levels = self
            .client
            .execute("return [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]);", vec![])
            .await
            .unwrap();
        let levels: Vec<u64> = serde_json::from_value(levels).unwrap();
        assert_eq!(levels.first(), Some(&1), "{page}: starts with h1");
        assert!(levels.windows(2).all(|w| w[1] <= w[0] + 1), "{page}: heading levels skip: {levels:?}");
    }
}

async fn start_failing_run(app: &TestApp) -> Uuid {
    let resp = app
        .post("/api/v1/runs")
        .json(&json!({"workflow": "selftest.steps", "input": {"steps": 3, "fail_in_step": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
}

async fn count_status(db: &TestDb, status: &str) -> i64 {
    sqlx::query_scalar("select count(*) from engine.runs where workflow = 'selftest.steps' and status::text = $1")
        .bind(status)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn ops_sign_in_see_a_failed_run_retry_it_bulk_retry_twenty_and_cancel_in_a_browser() {
    let db = TestDb::new().await;
    let app = shop(&db, |s| s.enable_test_workflows = true).await;
    let browser = Browser::start().await;
    let b = &browser.client;
    let console = |path: &str| app.url(&format!("/console{path}"));

    // Unsigned: the overview sends to the sign-in page.
    b.goto(&console("")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/console/sign-in"));
    browser.assert_accessible("sign-in").await;
    browser.shot("sign-in").await;
    b.find(Locator::Id("secret")).await.unwrap().send_keys("not-the-token").await.unwrap();
    b.find(Locator::Css("form.signin button")).await.unwrap().click().await.unwrap();
    browser.wait_text("not valid").await;
    b.find(Locator::Id("secret")).await.unwrap().send_keys(TOKEN).await.unwrap();
    b.find(Locator::Css("form.signin button")).await.unwrap().click().await.unwrap();
    browser.wait_text("Runs by workflow").await;

    // A failed run is shown with its error.
    let first = start_failing_run(&app).await;
    let rest: Vec<Uuid> = futures::future::join_all((0..20).map(|_| start_failing_run(&app))).await;
    wait_for("21 runs to fail", Duration::from_secs(60), || async { (count_status(&db, "failed").await == 21).then_some(()) }).await;
    b.goto(&console("")).await.unwrap();
    browser.assert_accessible("overview").await;
    browser.shot("overview").await;
    b.goto(&console(&format!("/runs/{first}"))).await.unwrap();
    let page = browser.text().await;
    assert!(page.contains("failing on purpose until the switch is on") && page.contains("failed"), "{page}");
    browser.assert_accessible("run").await;
    browser.shot("run-failed").await;

    // "Retry now" makes it succeed, and the page shows it.
    sqlx::query("insert into selftest.effects (run_id, step) values ($1, 'switch')").bind(Uuid::nil()).execute(&db.pool).await.unwrap();
    b.find(Locator::XPath("//button[text()='Retry now']")).await.unwrap().click().await.unwrap();
    wait_for("the page to show the run succeeded", Duration::from_secs(30), || async {
        let summary = b.find(Locator::Id("summary")).await.ok()?.text().await.ok()?;
        summary.contains("succeeded").then_some(())
    })
    .await;
    assert_eq!(run_status(&db.pool, first).await, "succeeded");
    assert!(browser.text().await.contains("admin retry: retry now"), "the action is audited on the run");
    browser.shot("run-succeeded").await;

    // Bulk retry of the 20 failed runs, after confirming their count.
    b.goto(&console("/runs?status=failed&workflow=selftest.steps")).await.unwrap();
    assert!(browser.text().await.contains("Retry 20 failed runs"));
    browser.assert_accessible("runs").await;
    browser.shot("runs-failed").await;
    b.find(Locator::Id("confirm")).await.unwrap().send_keys("20").await.unwrap();
    b.find(Locator::Css("form.bulk button")).await.unwrap().click().await.unwrap();
    browser.wait_text("Retried 20 run(s).").await;
    wait_for("the 20 runs to succeed", Duration::from_secs(60), || async { (count_status(&db, "succeeded").await == 21).then_some(()) }).await;
    for id in &rest {
        assert_eq!(run_status(&db.pool, *id).await, "succeeded");
    }

    // Cancel a sleeping run.
    let resp = app
        .post("/api/v1/runs")
        .json(&json!({"workflow": "selftest.steps", "input": {"steps": 2, "timer_ms": 600000}}))
        .send()
        .await
        .unwrap();
    let sleeper: Uuid = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    wait_status(&db.pool, sleeper, "sleeping", Duration::from_secs(30)).await;
    b.goto(&console(&format!("/runs/{sleeper}"))).await.unwrap();
    b.find(Locator::XPath("//button[text()='Cancel run']")).await.unwrap().click().await.unwrap();
    browser.wait_text("admin cancel").await;
    assert_eq!(run_status(&db.pool, sleeper).await, "cancelled");

    // Every other page renders, accessibly.
    for (path, name) in [
        ("/events", "events"),
        ("/subscriptions", "subscriptions"),
        ("/deliveries", "deliveries"),
        ("/orders", "orders"),
        ("/conversations", "conversations"),
        ("/appointments", "appointments"),
    ] {
        b.goto(&console(path)).await.unwrap();
        browser.assert_accessible(name).await;
        browser.shot(name).await;
    }

    // Refused: a POST without a session, and one from another origin with a session.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let action = console(&format!("/runs/{first}/cancel"));
    let no_session = plain.post(&action).header("Sec-Fetch-Site", "same-origin").send().await.unwrap();
    assert_eq!(no_session.status(), 403);
    let signed = plain
        .post(console("/sign-in"))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("user", ""), ("secret", TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let cross = plain.post(&action).header("Cookie", &cookie).header("Origin", "https://evil.example").send().await.unwrap();
    assert_eq!(cross.status(), 403);
    let cross_site = plain.post(&action).header("Cookie", &cookie).header("Sec-Fetch-Site", "cross-site").send().await.unwrap();
    assert_eq!(cross_site.status(), 403);
    let csp = no_session.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    // The cookie is HttpOnly and SameSite=Strict (no Secure on loopback).
    let set = signed.headers()["set-cookie"].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"));
    let _ = b.clone().close().await;
    app.stop().await;
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_uses_is_exported() {
    use crate::highlevel_mock::HighLevelApi;
    let dashboard: Value = serde_json::from_str(include_str!("../../deploy/grafana/relevo.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .collect();
    let mut names: Vec<String> = exprs
        .iter()
        .flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("relevo_")).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 15, "{names:?}");

    // A fresh node, as started in production, with one HighLevel location called once.
    let api = HighLevelApi::start().await;
    api.add_calendar("loc-m", "cal-m", "Dental", "America/Lima");
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = api.uri();
    let _node = crate::crash::start_node_with(&db, port, &[("HIGHLEVEL_API_BASE", base.as_str())]);
    wait_ready(port).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    crate::highlevel::connect_over_http(&client, port, &api, "loc-m").await;
    let calendars = client.get(url("/api/v1/highlevel/locations/loc-m/calendars")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(calendars.status(), 200);
    // A run that finishes, for the success-rate gauge (no finished run, no rate).
    let run: Value = client
        .post(url("/api/v1/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({"workflow": "selftest.steps", "input": {"steps": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id: Uuid = run["id"].as_str().unwrap().parse().unwrap();
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(30)).await;

    let exported = client.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !exported.lines().any(|l| l.strip_prefix(n.as_str()).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))))
        .collect();
    assert!(missing.is_empty(), "the dashboard uses metrics /metrics does not export: {missing:?}");
}

#[tokio::test]
async fn named_users_sign_in_with_their_argon2_password_and_their_actions_carry_their_name() {
    let db = TestDb::new().await;
    let hash = relevo::console::session::hash_password("a long console password").unwrap();
    let app = shop(&db, |s| {
        s.enable_test_workflows = true;
        s.console_users = vec![relevo::config::ConsoleUser { name: "ana".into(), password_hash: hash }];
    })
    .await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = |user: &'static str, secret: &'static str| {
        client.post(app.url("/console/sign-in")).header("Sec-Fetch-Site", "same-origin").form(&[("user", user), ("secret", secret)]).send()
    };
    assert_eq!(sign_in("ana", "wrong password").await.unwrap().status(), 401);
    assert_eq!(sign_in("luis", "a long console password").await.unwrap().status(), 401, "unknown user");
    assert_eq!(sign_in("ana", TOKEN).await.unwrap().status(), 401, "the admin token is not ana's password");
    let ok = sign_in("ana", "a long console password").await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    let id = start_failing_run(&app).await;
    wait_status(&db.pool, id, "failed", Duration::from_secs(30)).await;
    let retried = client
        .post(app.url(&format!("/console/runs/{id}/retry")))
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("at", "")]) // what the "Retry now" form posts
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 303);
    let page = client.get(app.url(&format!("/console/runs/{id}"))).header("Cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<strong>ana</strong> retry: retry now"), "the audit names ana");
    // Signed out, the cookie opens nothing.
    let out = client.post(app.url("/console/sign-out")).header("Cookie", &cookie).header("Sec-Fetch-Site", "same-origin").send().await.unwrap();
    assert_eq!(out.status(), 303);
    let after = client.get(app.url("/console/runs")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(after.status(), 303, "back to sign-in");

    // A new password for ana ends her sessions.
    let again = sign_in("ana", "a long console password").await.unwrap();
    let cookie = again.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(client.get(app.url("/console/runs")).header("Cookie", &cookie).send().await.unwrap().status(), 200);
    app.stop().await;
    let new_hash = relevo::console::session::hash_password("another long password").unwrap();
    let app = shop(&db, |s| s.console_users = vec![relevo::config::ConsoleUser { name: "ana".into(), password_hash: new_hash }]).await;
    let stale = client.get(app.url("/console/runs")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(stale.status(), 303, "the old password's session is over");
    app.stop().await;
}
