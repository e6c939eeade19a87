//! Every protocol's stream, parsed against a mock server that speaks it.

mod common;

use std::time::Duration;

use common::*;
use loadgen::metric::Metric;
use loadgen::mock::{Flavor, MockConfig};

const LOAD: &str = r#"
[workload]
input_tokens = { min = 4, max = 8 }
output_tokens = { min = 3, max = 6 }

[workload.adapters]
count = 2
include_base = true

[load]
users = [2]
step_duration = "1s"
"#;

async fn run_flavor(
    flavor: Flavor,
    protocol: &str,
    misreport: Option<u32>,
) -> loadgen::runner::RunOutcome {
    let server = mock(MockConfig {
        flavor,
        ttft: Duration::from_millis(5),
        gap: Duration::from_millis(2),
        misreport_tokens: misreport,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text(protocol, &[server.url()], "10s", LOAD),
        dir.path(),
    )
    .await;
    // Keep the directory alive for the assertions by leaking it (tests are short-lived).
    std::mem::forget(dir);
    out
}

fn assert_clean(out: &loadgen::runner::RunOutcome) {
    let o = overall(out, 0);
    assert!(o.ok > 5, "ok = {}", o.ok);
    assert_eq!(o.failed, 0, "{:?}", o.counters.errors);
    assert_eq!(
        o.counters.counted_by_server, o.ok,
        "the server's count is used when given"
    );
    assert_eq!(o.counters.count_mismatches, 0);
    assert!(o.latency_ms.contains_key(&Metric::Ttft));
    // Output tokens equal the sum of requested lengths (the mock honours max tokens).
    let rows = csv_rows(&out.dir);
    let asked: u64 = rows
        .iter()
        .filter(|r| r["phase"] == "measured")
        .map(|r| r["max_tokens"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(o.counters.output_tokens, asked);
    assert!(rows.iter().all(|r| r["token_events"] == r["output_tokens"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lorax_stream_without_space() {
    assert_clean(&run_flavor(Flavor::Lorax, "lorax", None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_stream_with_space_and_input_length() {
    let out = run_flavor(Flavor::Tgi, "lorax", None).await;
    assert_clean(&out);
    let rows = csv_rows(&out.dir);
    assert!(
        rows.iter().all(|r| r["server_prompt_tokens"] == "5"),
        "input_length is read as the prompt count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_completions_with_usage_and_done() {
    assert_clean(&run_flavor(Flavor::OpenAi, "openai-completions", None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_role_only_first_chunk_is_not_a_token() {
    let out = run_flavor(Flavor::OpenAi, "openai-chat", None).await;
    assert_clean(&out);
    // The role chunk is written at once; the first token only after the server's 5 ms TTFT,
    // so TTFT must count from the token, not from the role chunk.
    let rows = csv_rows(&out.dir);
    for r in rows.iter().filter(|r| r["phase"] == "measured") {
        let first_event: u64 = r["first_event_us"].parse().unwrap();
        let first_token: u64 = r["first_token_us"].parse().unwrap();
        assert!(
            first_token > first_event,
            "role chunk at {first_event}, token at {first_token}"
        );
        assert!(
            r["ttft_us"].parse::<u64>().unwrap() >= 5000,
            "TTFT includes the server's 5 ms: {}",
            r["ttft_us"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_server_counts_are_counted() {
    let out = run_flavor(Flavor::Lorax, "lorax", Some(1000)).await;
    let o = overall(&out, 0);
    assert_eq!(o.counters.count_mismatches, o.ok);
    assert_eq!(
        o.counters.output_tokens,
        o.ok * 1000,
        "the server's count wins, and the mismatch is on record"
    );
}
