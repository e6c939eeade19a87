//! Replicas (round-robin), per-target and per-adapter statistics, seeded
//! determinism, open-loop pacing and merging.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use loadgen::metric::Metric;
use loadgen::mock::MockConfig;

fn fast() -> MockConfig {
    MockConfig {
        ttft: Duration::from_millis(3),
        gap: Duration::from_millis(1),
        ..MockConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_across_two_replicas_with_per_target_stats() {
    let (a, b) = (mock(fast()).await, mock(fast()).await);
    let body = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 2, max = 2 }
[workload.adapters]
count = 5
[load]
step_duration = "1s"
[[load.steps]]
users = 2
replicas = 1
[[load.steps]]
users = 2
replicas = 2
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text("lorax", &[a.url(), b.url()], "10s", body),
        dir.path(),
    )
    .await;
    let one = step(&out, 0);
    assert_eq!(one.by_target.len(), 1, "step 1 uses one replica");
    let two = step(&out, 1);
    assert_eq!(two.by_target.len(), 2);
    let (ra, rb) = (
        two.by_target[&a.url()].requests,
        two.by_target[&b.url()].requests,
    );
    assert!(
        ra.abs_diff(rb) <= 2,
        "round-robin per request: {ra} vs {rb}"
    );
    assert_eq!(ra + rb, two.overall.requests);
    // Each server saw exactly the requests sent to it (warm-up included in its count).
    let rows = csv_rows(&out.dir);
    let to_b = rows.iter().filter(|r| r["target"] == b.url()).count() as u64;
    assert_eq!(b.stats.requests.load(Ordering::Relaxed), to_b);
    assert_eq!(two.name, "2 users, 2 replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_adapter_stats_add_up_and_cold_requests_are_kept() {
    let server = mock(fast()).await;
    let body = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 2, max = 3 }
[workload.adapters]
count = 4
include_base = true
[load]
users = [3]
step_duration = "1s"
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text("lorax", &[server.url()], "10s", body),
        dir.path(),
    )
    .await;
    let s = step(&out, 0);
    assert_eq!(
        s.by_adapter.len(),
        5,
        "{:?}",
        s.by_adapter.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        s.by_adapter.values().map(|b| b.requests).sum::<u64>(),
        s.overall.requests
    );
    let seen = server.stats.by_adapter.lock().unwrap().clone();
    for (name, b) in &s.by_adapter {
        assert!(seen[name] >= b.requests, "{name}");
    }
    assert_eq!(
        out.summary.cold_requests.len(),
        5,
        "one cold first request per adapter"
    );
    assert!(out
        .summary
        .cold_requests
        .values()
        .all(|v| v.len() == 1 && v[0].ttft_ms.is_some()));
    let rows = csv_rows(&out.dir);
    assert_eq!(rows.iter().filter(|r| r["cold"] == "true").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_requests_per_user() {
    let server = mock(fast()).await;
    let body = r#"
[workload]
input_tokens = { min = 1, max = 300 }
output_tokens = { min = 1, max = 4 }
[workload.adapters]
count = 25
[load]
users = [3]
step_duration = "1s"
"#;
    let text = scenario_text("lorax", &[server.url()], "10s", body);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r1 = run_text(&text, d1.path()).await;
    let r2 = run_text(&text, d2.path()).await;
    let key = |rows: Vec<HashMap<String, String>>| -> HashMap<(String, String), (String, String, String)> {
        rows.into_iter()
            .map(|r| ((r["user"].clone(), r["seq"].clone()), (r["adapter"].clone(), r["input_tokens"].clone(), r["max_tokens"].clone())))
            .collect()
    };
    let (k1, k2) = (key(csv_rows(&r1.dir)), key(csv_rows(&r2.dir)));
    let common: Vec<_> = k1.keys().filter(|k| k2.contains_key(*k)).collect();
    assert!(
        common.len() > 20,
        "both runs sent many of the same (user, seq)"
    );
    for k in common {
        assert_eq!(k1[k], k2[k], "user {} request {}", k.0, k.1);
    }
    let users: std::collections::HashSet<_> = k1.keys().map(|k| k.0.clone()).collect();
    assert_eq!(users.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_the_schedule_and_measures_from_it() {
    let server = mock(MockConfig {
        ttft: Duration::from_millis(20),
        gap: Duration::from_millis(2),
        ..MockConfig::default()
    })
    .await;
    let body = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 2, max = 2 }
[load]
mode = "open"
arrival = "constant"
rates = [40.0]
step_duration = "2s"
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text("lorax", &[server.url()], "10s", body),
        dir.path(),
    )
    .await;
    let s = step(&out, 0);
    assert_eq!(s.rate_per_s, Some(40.0));
    assert!(
        (78..=81).contains(&s.overall.requests),
        "40/s for 2 s: {}",
        s.overall.requests
    );
    let lag = s.send_lag_ms.expect("open loop records send lag");
    assert!(lag.p50 < 5.0, "{lag:?}");
    let sched = s
        .overall
        .from_scheduled_ms
        .as_ref()
        .expect("latency from the scheduled time");
    assert!(sched[&Metric::Ttft].p50 >= s.overall.latency_ms[&Metric::Ttft].p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_at_the_in_flight_cap_counts_the_queueing() {
    // The server takes 200 ms; one request in flight at a time; 20/s asked:
    // requests leave late, and latency from the schedule shows it.
    let server = mock(MockConfig {
        ttft: Duration::from_millis(200),
        gap: Duration::from_millis(1),
        ..MockConfig::default()
    })
    .await;
    let body = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 1, max = 1 }
[load]
mode = "open"
arrival = "constant"
rates = [20.0]
max_in_flight = 1
step_duration = "1s"
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text("lorax", &[server.url()], "10s", body),
        dir.path(),
    )
    .await;
    let o = overall(&out, 0);
    let sched = o.from_scheduled_ms.as_ref().unwrap();
    assert!(
        sched[&Metric::Ttft].max > 2.0 * o.latency_ms[&Metric::Ttft].max,
        "coordinated omission is visible: {sched:?}"
    );
    assert!(
        out.summary
            .health
            .warnings
            .iter()
            .any(|w| w.contains("send lag")),
        "{:?}",
        out.summary.health.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_two_runs_adds_counts_and_histograms_exactly() {
    let server = mock(fast()).await;
    let body = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 2, max = 5 }
[load]
users = [2]
step_duration = "1s"
"#;
    let text = scenario_text("lorax", &[server.url()], "10s", body);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r1 = run_text(&text, d1.path()).await;
    let r2 = run_text(&text, d2.path()).await;
    let merged = loadgen::merge::merge(&[r1.summary.clone(), r2.summary.clone()]).unwrap();
    let (a, b, m) = (overall(&r1, 0), overall(&r2, 0), &merged.steps[0].overall);
    assert_eq!(m.requests, a.requests + b.requests);
    assert_eq!(
        m.counters.output_tokens,
        a.counters.output_tokens + b.counters.output_tokens
    );
    let (ta, tb, tm) = (
        a.latency_ms[&Metric::Ttft],
        b.latency_ms[&Metric::Ttft],
        m.latency_ms[&Metric::Ttft],
    );
    assert_eq!(tm.count, ta.count + tb.count);
    assert_eq!(tm.max, ta.max.max(tb.max));
    let weighted =
        (ta.avg * ta.count as f64 + tb.avg * tb.count as f64) / (ta.count + tb.count) as f64;
    assert!((tm.avg - weighted).abs() < 1e-6);
    // A summary round-trips through JSON with its histograms intact.
    let json = serde_json::to_string(&merged).unwrap();
    let back: loadgen::summary::Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back.steps[0].overall.counters, m.counters);
    assert_eq!(back.steps[0].overall.histograms, m.histograms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_comes_from_the_named_environment_variable() {
    let server = mock(fast()).await;
    // SAFETY (edition 2021: safe): this test binary reads the variable only in this test.
    std::env::set_var("LOADGEN_TEST_TOKEN_XYZ", "s3cret");
    let body = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 1, max = 1 }
[load]
users = [1]
step_duration = "1s"
"#;
    let text = scenario_text("lorax", &[server.url()], "10s", body).replace(
        "timeout = \"10s\"",
        "timeout = \"10s\"\ntoken_env = \"LOADGEN_TEST_TOKEN_XYZ\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(&text, dir.path()).await;
    assert!(overall(&out, 0).ok > 0);
    assert_eq!(
        server.stats.last_authorization.lock().unwrap().as_deref(),
        Some("Bearer s3cret")
    );
}
