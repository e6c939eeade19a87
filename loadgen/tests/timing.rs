//! Measured times against the known delays of a mock server.

mod common;

use std::time::Duration;

use common::*;
use loadgen::metric::Metric;
use loadgen::mock::{Flavor, MockConfig};

const LOAD: &str = r#"
[workload]
input_tokens = { min = 4, max = 4 }
output_tokens = { min = 10, max = 10 }

[workload.adapters]
count = 3

[load]
users = [2]
step_duration = "2s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_and_streaming_match_the_server_delays() {
    let server = mock(MockConfig {
        flavor: Flavor::Lorax,
        ttft: Duration::from_millis(100),
        gap: Duration::from_millis(20),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text("lorax", &[server.url()], "10s", LOAD),
        dir.path(),
    )
    .await;
    let o = overall(&out, 0);
    assert_eq!(o.failed, 0, "{:?}", o.counters.errors);
    assert!(
        o.ok >= 8,
        "2 users × 2 s at ~0.3 s per request: got {}",
        o.ok
    );
    let ttft = o.latency_ms[&Metric::Ttft];
    let streaming = o.latency_ms[&Metric::Streaming];
    let total = o.latency_ms[&Metric::Total];
    let tpot = o.latency_ms[&Metric::Tpot];
    // The server cannot be early; a noisy 2-core machine may make it late by a little.
    assert!(ttft.min >= 99.0 && ttft.p50 < 130.0, "ttft {ttft:?}");
    // The mock schedules tokens from the request's arrival, so a late first token shortens streaming.
    assert!(
        streaming.min >= 150.0 && (175.0..215.0).contains(&streaming.p50),
        "streaming (9 gaps of 20 ms) {streaming:?}"
    );
    assert!(
        (total.avg - ttft.avg - streaming.avg).abs() < 1.0,
        "total = ttft + streaming"
    );
    assert!(tpot.p50 >= 19.4 && tpot.p50 < 24.0, "tpot {tpot:?}");
    let itl = o.latency_ms[&Metric::Itl];
    assert_eq!(itl.count, o.ok * 9, "nine gaps per request");
    assert!(itl.p50 >= 15.0 && itl.p50 < 25.0, "itl {itl:?}");
    // Output tokens: 10 per request, counted by the server and by events alike.
    assert_eq!(o.counters.output_tokens, o.ok * 10);
    assert_eq!(o.counters.counted_by_server, o.ok);
    assert_eq!(o.counters.count_mismatches, 0);
    let per_req = o.tokens_per_s_per_request.unwrap();
    assert!(
        per_req.p50 > 30.0 && per_req.p50 <= 35.8,
        "10 tokens in ~0.28 s: {per_req:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_are_excluded_and_marked() {
    let server = mock(MockConfig {
        ttft: Duration::from_millis(10),
        gap: Duration::from_millis(1),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let body = LOAD.replace(
        "step_duration = \"2s\"",
        "step_duration = \"1s\"\nwarmup = \"1s\"",
    );
    let out = run_text(
        &scenario_text("lorax", &[server.url()], "10s", &body),
        dir.path(),
    )
    .await;
    let s = step(&out, 0);
    assert!(s.warmup_requests > 0);
    let rows = csv_rows(&out.dir);
    let warm = rows.iter().filter(|r| r["phase"] == "warmup").count() as u64;
    let measured = rows.iter().filter(|r| r["phase"] == "measured").count() as u64;
    assert_eq!(warm, s.warmup_requests);
    assert_eq!(measured, s.overall.requests);
    assert_eq!(
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed) as usize,
        rows.len()
    );
}
