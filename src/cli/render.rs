//! How `relevo runs` shows the API's answers to a person: a table for lists,
//! a compact block for one run, one line per action. Attempts are numbered
//! 1, 2, 3 in the order they happened.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Shown;

pub fn render(shown: Shown, body: &Value, now: DateTime<Utc>) -> String {
    match shown {
        Shown::List => table(body, now),
        Shown::Show => block(body, now),
        Shown::Retried => format!(
            "retried run {}: {} (next run {})\n",
            text(&body["id"]),
            text(&body["status"]),
            when(&body["next_run_at"], now)
        ),
        Shown::Cancelled => format!("cancelled run {}\n", text(&body["id"])),
        Shown::BulkRetried => format!("retried {} run(s)\n", body["retried"].as_u64().unwrap_or(0)),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// "in 5 s", "3 min ago".
fn when(v: &Value, now: DateTime<Utc>) -> String {
    let Some(t) = v.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "—".into();
    };
    let secs = (t.to_utc() - now).num_seconds();
    let span = |s: i64| match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    };
    if secs >= 0 {
        if secs == 0 {
            "now".into()
        } else {
            format!("in {}", span(secs))
        }
    } else {
        format!("{} ago", span(-secs))
    }
}

fn error_line(e: &Value) -> String {
    if e.is_null() {
        return String::new();
    }
    let step = e["step"].as_str().map(|s| format!(" in {s}")).unwrap_or_default();
    format!("{}{step}: {}", text(&e["kind"]), e["message"].as_str().unwrap_or(""))
}

fn clip(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= n {
        s
    } else {
        format!("{}…", s.chars().take(n.saturating_sub(1)).collect::<String>())
    }
}

fn table(body: &Value, now: DateTime<Utc>) -> String {
    let header = ["ID", "WORKFLOW", "KEY", "STATUS", "ATTEMPTS", "LAST ERROR", "NEXT RUN", "AGE"].map(String::from);
    let mut rows = vec![header.to_vec()];
    for r in body["items"].as_array().into_iter().flatten() {
        let active = matches!(r["status"].as_str(), Some("pending" | "running" | "sleeping"));
        rows.push(vec![
            text(&r["id"]),
            text(&r["workflow"]),
            text(&r["key"]),
            text(&r["status"]),
            text(&r["attempts"]),
            clip(&error_line(&r["last_error"]), 60),
            if active { when(&r["next_run_at"], now) } else { "—".into() },
            when(&r["created_at"], now).trim_end_matches(" ago").to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str("(no runs)\n");
    }
    if let Some(next) = body["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {next}\n"));
    }
    out
}

fn block(r: &Value, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "run {}  {} v{}  {}\n",
        text(&r["id"]),
        text(&r["workflow"]),
        text(&r["workflow_version"]),
        text(&r["status"])
    );
    out.push_str(&format!("key: {}  created: {}  ", text(&r["key"]), when(&r["created_at"], now)));
    if matches!(r["status"].as_str(), Some("pending" | "running" | "sleeping")) {
        out.push_str(&format!("next run: {}\n", when(&r["next_run_at"], now)));
    } else {
        out.push_str(&format!("finished: {}\n", when(&r["finished_at"], now)));
    }
    if !r["last_error"].is_null() {
        out.push_str(&format!("last error: {}\n", error_line(&r["last_error"])));
    }
    let attempts = r["attempts"].as_array().cloned().unwrap_or_default();
    // A step records the fence of the attempt that wrote it; people count attempts 1, 2, 3.
    let number_of = |fence: &Value| {
        attempts.iter().position(|a| a["attempt"] == *fence).map_or_else(|| "?".into(), |i| (i + 1).to_string())
    };
    out.push_str("steps:\n");
    for s in r["steps"].as_array().into_iter().flatten() {
        let took = match (s["started_at"].as_str(), s["finished_at"].as_str()) {
            (Some(a), Some(b)) => match (DateTime::parse_from_rfc3339(a), DateTime::parse_from_rfc3339(b)) {
                (Ok(a), Ok(b)) => format!("{} ms", (b - a).num_milliseconds()),
                _ => "—".into(),
            },
            _ => "—".into(),
        };
        out.push_str(&format!("  {:<24} {:<10} {:>8}  attempt {}\n", text(&s["name"]), text(&s["status"]), took, number_of(&s["attempt"])));
    }
    out.push_str("attempts:\n");
    for (i, a) in attempts.iter().enumerate() {
        let error = error_line(&a["error"]);
        out.push_str(&format!(
            "  #{:<3} {:<12} {:<14}{}\n",
            i + 1,
            text(&a["outcome"]),
            when(&a["started_at"], now),
            if error.is_empty() { String::new() } else { format!(" {}", clip(&error, 100)) }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn a_list_is_a_table_with_the_next_cursor() {
        let body = json!({"items": [
            {"id": "r1", "workflow": "email_delivery", "key": null, "status": "failed", "attempts": 2,
             "last_error": {"kind": "permanent", "step": "send", "message": "smtp said no"},
             "next_run_at": "2026-12-02T10:00:00Z", "created_at": "2026-12-02T09:57:00Z"},
            {"id": "r2", "workflow": "payment_fulfilment", "key": "order:1", "status": "sleeping", "attempts": 1,
             "last_error": null, "next_run_at": "2026-12-02T10:00:30Z", "created_at": "2026-12-02T08:00:00Z"}],
            "next_cursor": "r2"});
        let out = render(Shown::List, &body, now());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("ID  WORKFLOW") && lines[0].contains("LAST ERROR"), "{out}");
        assert!(lines[1].contains("email_delivery") && lines[1].contains("permanent in send: smtp said no") && lines[1].contains("3 min"));
        assert!(lines[2].contains("order:1") && lines[2].contains("in 30 s") && lines[2].contains("2 h"));
        assert_eq!(lines[3], "more: --cursor r2");
        // Columns line up.
        assert_eq!(lines[1].find("email_delivery"), lines[0].find("WORKFLOW"));
    }

    #[test]
    fn a_run_numbers_its_attempts_without_gaps() {
        let body = json!({"id": "r1", "workflow": "selftest.steps", "workflow_version": 1, "status": "succeeded", "key": null,
            "created_at": "2026-12-02T09:59:00Z", "finished_at": "2026-12-02T09:59:50Z", "last_error": null,
            "steps": [{"name": "step-1", "status": "completed", "attempt": 1, "started_at": "2026-12-02T09:59:00Z", "finished_at": "2026-12-02T09:59:00.012Z"},
                      {"name": "step-2", "status": "completed", "attempt": 3, "started_at": "2026-12-02T09:59:40Z", "finished_at": "2026-12-02T09:59:40.005Z"}],
            "attempts": [{"attempt": 1, "outcome": "failed", "started_at": "2026-12-02T09:59:00Z",
                          "error": {"kind": "permanent", "step": "step-2", "message": "no"}},
                         {"attempt": 3, "outcome": "succeeded", "started_at": "2026-12-02T09:59:40Z", "error": null}]});
        let out = render(Shown::Show, &body, now());
        assert!(out.contains("#1   failed") && out.contains("permanent in step-2: no"), "{out}");
        assert!(out.contains("#2   succeeded"), "{out}");
        assert!(!out.contains("#3"));
        assert!(out.contains("step-2") && out.contains("5 ms  attempt 2"), "{out}");
    }

    #[test]
    fn actions_are_one_line() {
        assert_eq!(render(Shown::Cancelled, &json!({"id": "r1"}), now()), "cancelled run r1\n");
        assert_eq!(render(Shown::BulkRetried, &json!({"retried": 20}), now()), "retried 20 run(s)\n");
        let retried = render(Shown::Retried, &json!({"id": "r1", "status": "pending", "next_run_at": "2026-12-02T10:00:00Z"}), now());
        assert_eq!(retried, "retried run r1: pending (next run now)\n");
    }
}
