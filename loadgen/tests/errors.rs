//! Failures of every kind are counted by kind, and the run completes.

mod common;

use std::time::Duration;

use common::*;
use loadgen::mock::{Fault, Flavor, MockConfig};

const LOAD: &str = r#"
[workload]
input_tokens = { min = 4, max = 8 }
output_tokens = { min = 4, max = 4 }

[workload.adapters]
count = 2
selection = "round-robin"

[load]
users = [2]
step_duration = "1s"
"#;

/// Run with `fault` on adapter-1 only; return (errors by kind, ok count).
async fn with_fault(
    flavor: Flavor,
    protocol: &str,
    fault: Fault,
    timeout: &str,
) -> (std::collections::BTreeMap<String, u64>, u64) {
    let server = mock(MockConfig {
        flavor,
        ttft: Duration::from_millis(5),
        gap: Duration::from_millis(2),
        fault: Some(fault),
        fault_adapter: Some("adapter-1".into()),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text(protocol, &[server.url()], timeout, LOAD),
        dir.path(),
    )
    .await;
    let s = step(&out, 0);
    // Failures land on the faulty adapter only.
    assert_eq!(s.by_adapter["adapter-0"].failed, 0);
    assert_eq!(s.by_adapter["adapter-1"].ok, 0);
    let rows = csv_rows(&out.dir);
    assert!(rows
        .iter()
        .filter(|r| r["adapter"] == "adapter-1")
        .all(|r| !r["error_kind"].is_empty()));
    (s.overall.counters.errors.clone(), s.overall.ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_is_counted_by_status() {
    let (errors, ok) = with_fault(Flavor::Lorax, "lorax", Fault::Status(500), "10s").await;
    assert!(errors["http_500"] > 0 && ok > 0, "{errors:?}");
    assert_eq!(errors.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_mid_stream_is_stream_broken() {
    let (errors, _) = with_fault(Flavor::Lorax, "lorax", Fault::CloseAfter(2), "10s").await;
    assert!(errors["stream_broken"] > 0, "{errors:?}");
    assert_eq!(errors.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_past_the_timeout_is_a_timeout() {
    let (errors, _) = with_fault(Flavor::Lorax, "lorax", Fault::Stall, "300ms").await;
    assert!(errors["timeout"] > 0, "{errors:?}");
    assert_eq!(errors.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_event_inside_a_200_stream_is_a_failure() {
    let (errors, _) = with_fault(Flavor::Lorax, "lorax", Fault::ErrorEvent(1), "10s").await;
    assert!(errors["server_error_event"] > 0, "{errors:?}");
    let (errors, _) = with_fault(Flavor::OpenAi, "openai-chat", Fault::ErrorEvent(1), "10s").await;
    assert!(errors["server_error_event"] > 0, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_event_is_a_protocol_error() {
    let (errors, _) = with_fault(Flavor::OpenAi, "openai-completions", Fault::Garbage, "10s").await;
    assert!(errors["protocol"] > 0, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_connect_errors() {
    // Bind a port, then free it: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = run_text(
        &scenario_text("lorax", &[format!("http://127.0.0.1:{port}")], "5s", LOAD),
        dir.path(),
    )
    .await;
    let o = overall(&out, 0);
    assert_eq!(o.ok, 0);
    assert!(o.counters.errors["connect"] > 0, "{:?}", o.counters.errors);
    assert!(
        !out.summary.partial,
        "the run completes despite every request failing"
    );
}
