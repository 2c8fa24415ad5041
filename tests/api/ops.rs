//! Guarantee 9: operating runs over the API and the CLI.

use std::time::Duration;

use relevo::{
    engine::Registry,
    workflows::selftest::{self, Steps, StepsInput},
};
use serde_json::{json, Value};

use crate::helpers::*;

fn steps(n: u32, key: Option<&str>) -> StepsInput {
    StepsInput {
        steps: n,
        pause_ms: 0,
        timer_ms: None,
        key: key.map(str::to_owned),
        abort_in_step: None,
        fail_in_step: None,
    }
}

#[tokio::test]
async fn list_filters_and_paginates_runs() {
    let db = TestDb::new().await;
    // No workers for these runs: register nothing, start runs directly.
    let app = spawn_app(&db, Registry::new()).await;
    let engine = relevo::engine::Engine::new(db.pool.clone(), selftest::register(Registry::new()), fast_engine());
    let mut ids = vec![];
    for i in 0..7 {
        let key = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(engine.start::<Steps>(&steps(1, Some(key))).await.unwrap());
    }
    sqlx::query("update engine.runs set status = 'failed' where id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();

    // Pagination: newest first, 3 per page, cursor until null.
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let mut req = app.get("/api/v1/runs").query(&[("limit", "3")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = ids.iter().rev().map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);

    let count = |query: Vec<(&'static str, String)>| {
        let req = app.get("/api/v1/runs").query(&query);
        async move {
            let page: Value = req.send().await.unwrap().json().await.unwrap();
            page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(count(vec![("key", "odd".into())]).await.len(), 3);
    let failed = count(vec![("status", "failed".into()), ("workflow", "selftest.steps".into())]).await;
    assert_eq!(failed, vec![ids[0].to_string()]);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(count(vec![("created_after", future.clone())]).await.len(), 0);
    assert_eq!(count(vec![("created_before", future)]).await.len(), 7);
    app.stop().await;
}

#[tokio::test]
async fn show_retry_rerun_from_a_step_and_cancel() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, selftest::register(Registry::new())).await;

    // A run that succeeds: show has its steps and attempts.
    let resp = app
        .post("/api/v1/runs")
        .json(&json!({"workflow": "selftest.steps", "input": {"steps": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id: uuid::Uuid = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;
    let run: Value = app.get(&format!("/api/v1/runs/{id}")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = run["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["step-1", "step-2", "step-3"]);
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(run["attempts"][0]["outcome"], "succeeded");

    // Plain retry of a succeeded run is refused; rerun from step-2 re-executes 2 and 3 only.
    let resp = app.post(&format!("/api/v1/runs/{id}/retry")).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    let resp = app
        .post(&format!("/api/v1/runs/{id}/retry"))
        .json(&json!({"from_step": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let resp = app
        .post(&format!("/api/v1/runs/{id}/retry"))
        .json(&json!({"from_step": "step-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for("the rerun to finish", Duration::from_secs(20), || async {
        (effects(&db, id).await.len() == 5).then_some(())
    })
    .await;
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;
    assert_eq!(effects(&db, id).await, vec!["step-1", "step-2", "step-3", "step-2", "step-3"]);

    // Retry at a time: the run waits until then.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let resp = app
        .post(&format!("/api/v1/runs/{id}/retry"))
        .json(&json!({"from_step": "step-3", "at": at.to_rfc3339()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;
    let last: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select max(at) from selftest.effects where run_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(last >= at, "the retry ran before its time");

    // Cancel a sleeping run; cancelling again is a conflict; retry brings it back.
    let resp = app
        .post("/api/v1/runs")
        .json(&json!({"workflow": "selftest.steps", "input": {"steps": 2, "timer_ms": 600000}}))
        .send()
        .await
        .unwrap();
    let id: uuid::Uuid = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
    wait_status(&db.pool, id, "sleeping", Duration::from_secs(20)).await;
    let resp = app.post(&format!("/api/v1/runs/{id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "cancelled");
    let resp = app.post(&format!("/api/v1/runs/{id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "conflict");
    let resp = app.post(&format!("/api/v1/runs/{id}/retry")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    wait_status(&db.pool, id, "sleeping", Duration::from_secs(20)).await;
    assert_eq!(effects(&db, id).await, vec!["step-1"], "step-1 stayed completed");
    app.stop().await;
}

#[tokio::test]
async fn bulk_retry_retries_failed_runs_matching_the_filter_and_stats_count_them() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, selftest::register(Registry::new())).await;
    let mut ids = vec![];
    for i in 0..4 {
        let id = app.engine.start::<Steps>(&steps(1, Some(&format!("k{i}")))).await.unwrap();
        wait_status(&db.pool, id, "succeeded", Duration::from_secs(20)).await;
        ids.push(id);
    }
    // Three of them "failed" (as if a provider had been down).
    sqlx::query("update engine.runs set status = 'failed', finished_at = now() where id = any($1)")
        .bind(&ids[..3])
        .execute(&db.pool)
        .await
        .unwrap();
    let stats: Value = app.get("/api/v1/stats").send().await.unwrap().json().await.unwrap();
    let wf = &stats["workflows"][0];
    assert_eq!((wf["workflow"].as_str(), wf["failed"].as_i64(), wf["succeeded"].as_i64()), (Some("selftest.steps"), Some(3), Some(1)));
    assert_eq!(wf["success_rate_last_hour"], 0.25);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("relevo_runs{workflow=\"selftest.steps\",status=\"failed\"} 3"), "{metrics}");

    let resp = app
        .post("/api/v1/runs/retry")
        .json(&json!({"workflow": "selftest.steps", "key": "k0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"retried": 1}));
    let resp = app.post("/api/v1/runs/retry").json(&json!({})).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"retried": 2}));
    for id in &ids {
        wait_status(&db.pool, *id, "succeeded", Duration::from_secs(20)).await;
    }
    let resp = app.post("/api/v1/runs/retry").json(&json!({"status": "running"})).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn the_cli_lists_shows_retries_and_cancels_runs() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, selftest::register(Registry::new())).await;
    let id = app
        .engine
        .start::<Steps>(&StepsInput { timer_ms: Some(600_000), ..steps(2, None) })
        .await
        .unwrap();
    wait_status(&db.pool, id, "sleeping", Duration::from_secs(20)).await;
    let url = format!("http://{}", app.addr);
    let cli = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_relevo"));
        cmd.args(["runs"]).args(args).args(["--url", &url, "--token", TOKEN]);
        async move {
            let out = cmd.output().await.unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    let id_s = id.to_string();

    // For people: a table, a block, one line per action.
    let (ok, out) = cli(&["list", "--status", "sleeping"]).await;
    assert!(ok && out.starts_with("ID ") && out.lines().nth(1).is_some_and(|l| l.starts_with(&id_s) && l.contains("sleeping")), "{out}");
    let (ok, out) = cli(&["show", &id_s]).await;
    assert!(ok && out.contains("steps:\n  step-1") && out.contains("attempts:\n  #1 "), "{out}");
    let (ok, out) = cli(&["cancel", &id_s]).await;
    assert!(ok && out == format!("cancelled run {id_s}\n"), "{out}");
    assert_eq!(run_status(&db.pool, id).await, "cancelled");
    let (ok, _) = cli(&["cancel", &id_s]).await;
    assert!(!ok, "cancelling twice exits non-zero");
    let (ok, out) = cli(&["retry", &id_s]).await;
    assert!(ok && out.starts_with(&format!("retried run {id_s}: ")), "{out}");
    wait_status(&db.pool, id, "sleeping", Duration::from_secs(20)).await;
    // Attempts run 1, 2 for people although the retry moved the fence.
    let (ok, out) = cli(&["show", &id_s]).await;
    assert!(ok && out.contains("\n  #2 ") && !out.contains("#3"), "{out}");
    let (ok, out) = cli(&["retry", "--all", "--workflow", "selftest.steps"]).await;
    assert!(ok && out == "retried 0 run(s)\n", "{out}");
    // For scripts: the API's JSON.
    let (ok, out) = cli(&["show", &id_s, "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && json["steps"][0]["name"] == "step-1");
    assert_eq!(json["attempts"].as_array().unwrap().iter().map(|a| a["number"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    app.stop().await;
}

#[tokio::test]
async fn retention_prunes_old_successes_and_keeps_failures_longer() {
    use relevo::engine::retention::{prune, Retention};
    let db = TestDb::new().await;
    let engine = relevo::engine::Engine::new(db.pool.clone(), selftest::register(Registry::new()), fast_engine());
    let mut ids = vec![];
    for _ in 0..4 {
        ids.push(engine.start::<Steps>(&steps(1, None)).await.unwrap());
    }
    // old success, recent success, old-ish failure, running
    for (id, status, age_h) in [(ids[0], "succeeded", 200), (ids[1], "succeeded", 1), (ids[2], "failed", 200)] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "update engine.runs set status = '{status}', finished_at = now() - interval '{age_h} hours' where id = $1"
        )))
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    let pruned = prune(&db.pool, Retention::default()).await.unwrap();

    assert_eq!(pruned.runs, 1);
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("select id from engine.runs order by id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, ids[1..].to_vec());
}
