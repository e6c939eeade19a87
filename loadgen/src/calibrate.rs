//! `loadgen calibrate`: how far loadgen's timestamps are from the truth.
//!
//! A loopback mock server on its own thread stamps the instant it writes each
//! calibration request's first and last token (same process, same monotonic
//! clock). The client — the same [`crate::client::send`] every run uses — runs
//! on one single-threaded runtime (one core) with N concurrent streams. The
//! error of a measurement is `client stamp − server write`: everything the
//! client adds (loopback delivery, HTTP and SSE parsing, scheduling).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{send, PreparedRequest};
use crate::mock::{Flavor, MockConfig, MockServer, MockStats};
use crate::record::micros;
use crate::scenario::Protocol;

/// Calibration settings.
#[derive(Debug, Clone)]
pub struct CalibrateConfig {
    /// Concurrency levels to try, in order.
    pub levels: Vec<usize>,
    /// Time spent at each level.
    pub duration: Duration,
    /// Tokens per request.
    pub tokens: u32,
    /// Server delay to the first token.
    pub ttft: Duration,
    /// Server delay between tokens.
    pub gap: Duration,
}

impl Default for CalibrateConfig {
    fn default() -> Self {
        CalibrateConfig {
            levels: vec![1, 8, 32, 128, 512, 1024],
            duration: Duration::from_secs(3),
            tokens: 32,
            ttft: Duration::from_millis(20),
            gap: Duration::from_millis(10),
        }
    }
}

/// Results at one concurrency level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    /// Concurrent streams.
    pub concurrency: usize,
    /// Requests completed.
    pub requests: u64,
    /// Requests that failed.
    pub failed: u64,
    /// SSE token events per second received.
    pub events_per_s: f64,
    /// First-token error (client stamp − server write), µs: p50, p99, max.
    pub first_token_error_us: [u64; 3],
    /// Last-token error, µs: p50, p99, max.
    pub last_token_error_us: [u64; 3],
    /// CPU used by the client thread, percent of one core.
    pub client_cpu_percent: f64,
}

/// Run the calibration; `progress` is called after each level.
pub fn calibrate(
    cfg: &CalibrateConfig,
    mut progress: impl FnMut(&LevelResult),
) -> anyhow::Result<Vec<LevelResult>> {
    // The server gets its own runtime and thread, so the client's core is its own.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = server_rt.block_on(MockServer::start(MockConfig {
        flavor: Flavor::Lorax,
        ttft: cfg.ttft,
        gap: cfg.gap,
        ..MockConfig::default()
    }))?;
    let url = format!("{}/generate_stream", server.url());
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    let mut next_id = 0u64;
    for &n in &cfg.levels {
        let result = client_rt.block_on(level(cfg, n, &url, &server.stats, &mut next_id))?;
        progress(&result);
        results.push(result);
    }
    drop(server);
    server_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(results)
}

async fn level(
    cfg: &CalibrateConfig,
    n: usize,
    url: &str,
    stats: &Arc<MockStats>,
    next_id: &mut u64,
) -> anyhow::Result<LevelResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let cpu0 = thread_cpu();
    let first_id = *next_id;
    *next_id += 1_000_000;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..n {
        let (http, url, tokens) = (http.clone(), url.to_owned(), cfg.tokens);
        let base = first_id + (worker as u64) * 10_000;
        tasks.spawn(async move {
            let mut out = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let id = base + i;
                i += 1;
                let body = serde_json::to_vec(&serde_json::json!({
                    "inputs": format!("calib-{id} hello"),
                    "parameters": {"max_new_tokens": tokens, "details": true}
                }))
                .expect("plain JSON");
                let req = PreparedRequest {
                    url: url.clone(),
                    body,
                    protocol: Protocol::Lorax,
                    bearer: None,
                    timeout: Duration::from_secs(60),
                };
                let (_, stamps, _, failure) = send(&http, req).await;
                out.push((id, stamps, failure.is_some()));
            }
            out
        });
    }
    let mut records = Vec::new();
    while let Some(r) = tasks.join_next().await {
        records.extend(r?);
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu().saturating_sub(cpu0).as_secs_f64();
    let emits = stats.emits.lock().expect("not poisoned");
    let mut first = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut last = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut failed, mut events) = (0u64, 0u64);
    for (id, stamps, fail) in &records {
        events += u64::from(stamps.token_events);
        if *fail {
            failed += 1;
            continue;
        }
        let (Some(e), Some(f), Some(l)) = (emits.get(id), stamps.first_token, stamps.last_token)
        else {
            failed += 1;
            continue;
        };
        first.saturating_record(u64::from(micros(f.saturating_duration_since(e.first))).max(1));
        last.saturating_record(u64::from(micros(l.saturating_duration_since(e.last))).max(1));
    }
    let q = |h: &Histogram<u64>| [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()];
    Ok(LevelResult {
        concurrency: n,
        requests: records.len() as u64,
        failed,
        events_per_s: events as f64 / wall,
        first_token_error_us: q(&first),
        last_token_error_us: q(&last),
        client_cpu_percent: cpu / wall * 100.0,
    })
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The table printed by `loadgen calibrate`, with its verdict line.
pub fn render(results: &[LevelResult]) -> String {
    let mut out = String::from(
        "streams  requests  failed  token events/s  client CPU  first-token error µs p50/p99/max  last-token error µs p50/p99/max\n",
    );
    for r in results {
        out.push_str(&format!(
            "{:>7}  {:>8}  {:>6}  {:>14.0}  {:>9.0}%  {:>32}  {:>31}\n",
            r.concurrency,
            r.requests,
            r.failed,
            r.events_per_s,
            r.client_cpu_percent,
            format!(
                "{}/{}/{}",
                r.first_token_error_us[0], r.first_token_error_us[1], r.first_token_error_us[2]
            ),
            format!(
                "{}/{}/{}",
                r.last_token_error_us[0], r.last_token_error_us[1], r.last_token_error_us[2]
            ),
        ));
    }
    for (label, idx) in [("median", 0), ("p99", 1)] {
        let within = results
            .iter()
            .filter(|r| {
                r.failed == 0
                    && r.first_token_error_us[idx] < 1000
                    && r.last_token_error_us[idx] < 1000
            })
            .max_by_key(|r| r.concurrency);
        match within {
            Some(r) => out.push_str(&format!(
                "{label} error under 1 ms up to {} concurrent streams ({:.0} token events/s on one client core)\n",
                r.concurrency, r.events_per_s
            )),
            None => out.push_str(&format!("{label} error under 1 ms at no level tried\n")),
        }
    }
    out
}
