//! Shared helpers: run a scenario in-process against mock servers this test starts.
#![allow(dead_code)]

use std::path::Path;

use loadgen::mock::{MockConfig, MockServer};
use loadgen::runner::{run, RunConfig, RunOutcome};
use loadgen::scenario::{Overrides, Scenario};
use loadgen::summary::{Breakdown, StepSummary};
use tokio_util::sync::CancellationToken;

/// Start a mock server with `config`.
pub async fn mock(config: MockConfig) -> MockServer {
    MockServer::start(config)
        .await
        .expect("bind a loopback port")
}

/// A scenario with a `[target]` naming `urls` and the given protocol; `body` holds the rest.
pub fn scenario_text(protocol: &str, urls: &[String], timeout: &str, body: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "name = \"test\"\nseed = 11\n\n[target]\nprotocol = \"{protocol}\"\nurls = [{}]\ntimeout = \"{timeout}\"\n\n{body}",
        urls.join(", ")
    )
}

/// Parse and run a scenario into a temporary directory.
pub async fn run_text(text: &str, dir: &Path) -> RunOutcome {
    let scenario = Scenario::from_str(text, &dir.join("test.toml"), &Overrides::default())
        .expect("valid scenario");
    run(RunConfig {
        scenario,
        out_dir: dir.join("out"),
        progress: false,
        cancel: CancellationToken::new(),
    })
    .await
    .expect("run completes")
}

/// The overall breakdown of step `i`.
pub fn overall(outcome: &RunOutcome, i: usize) -> &Breakdown {
    &step(outcome, i).overall
}

/// Step `i`.
pub fn step(outcome: &RunOutcome, i: usize) -> &StepSummary {
    &outcome.summary.steps[i]
}

/// Rows of requests.csv as maps from column to value.
pub fn csv_rows(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(dir.join("requests.csv")).expect("requests.csv exists");
    let headers = reader.headers().expect("header row").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("valid row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}
