//! The results model: per-scope accumulators (HDR histograms + counters) and
//! the serde types of `summary.json`, which readers (tables, merge, reports)
//! only read.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metric::{Metric, Stat};
use crate::record::{CountSource, RequestRecord};

/// Schema tag written into every summary.
pub const SCHEMA: &str = "loadgen-summary/1";

/// Microsecond histograms cover 1 µs .. 1 hour at 3 significant figures.
const MAX_US: u64 = 3_600_000_000;

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid")
}

/// Names of the histograms kept per scope; the key in `histograms`.
const HISTS: [&str; 8] = [
    "ttft",
    "total",
    "streaming",
    "tpot",
    "itl",
    "tokens_per_s_milli",
    "ttft_from_scheduled",
    "total_from_scheduled",
];

/// Raw material of one scope (a step overall, one adapter, one target).
#[derive(Debug, Clone)]
pub struct Accumulator {
    hists: BTreeMap<&'static str, Histogram<u64>>,
    counters: Counters,
}

/// Request and token counts of a scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests counted (ok + failed).
    pub requests: u64,
    /// Requests that completed normally.
    pub ok: u64,
    /// Failed requests by kind (`http_500`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Output tokens of completed requests.
    pub output_tokens: u64,
    /// Completed requests whose token count came from the server.
    pub counted_by_server: u64,
    /// Completed requests whose token count came from counting token events.
    pub counted_by_events: u64,
    /// Requests where the server's count differed from the token events seen.
    pub count_mismatches: u64,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            hists: HISTS.iter().map(|&k| (k, new_hist())).collect(),
            counters: Counters::default(),
        }
    }
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

impl Accumulator {
    fn rec(&mut self, name: &'static str, value: u64) {
        if let Some(h) = self.hists.get_mut(name) {
            h.saturating_record(value.clamp(1, MAX_US));
        }
    }

    /// Add one request.
    pub fn add(&mut self, r: &RequestRecord) {
        let c = &mut self.counters;
        c.requests += 1;
        if let Some(f) = &r.failure {
            *c.errors.entry(f.kind.name()).or_default() += 1;
            return;
        }
        c.ok += 1;
        let (n, source) = r.output_tokens();
        c.output_tokens += u64::from(n);
        match source {
            CountSource::Server => c.counted_by_server += 1,
            CountSource::Events => c.counted_by_events += 1,
        }
        if r.stamps
            .server_output_tokens
            .is_some_and(|s| s != r.stamps.token_events)
        {
            c.count_mismatches += 1;
        }
        if let Some(t) = r.ttft() {
            self.rec("ttft", us(t));
        }
        if let Some(t) = r.total() {
            self.rec("total", us(t));
            if n > 0 {
                let per_s_milli = f64::from(n) / t.as_secs_f64().max(1e-6) * 1000.0;
                self.rec("tokens_per_s_milli", per_s_milli as u64);
            }
        }
        if let Some(t) = r.streaming() {
            self.rec("streaming", us(t));
        }
        if let Some(t) = r.tpot() {
            self.rec("tpot", us(t));
        }
        for &gap in &r.stamps.itl_us {
            self.rec("itl", u64::from(gap));
        }
        if let Some(sched) = r.scheduled {
            if let Some(first) = r.stamps.first_token {
                self.rec("ttft_from_scheduled", us(first - sched));
            }
            if let Some(last) = r.stamps.last_token {
                self.rec("total_from_scheduled", us(last - sched));
            }
        }
    }

    /// Add everything in `other` (exact: HDR histograms merge losslessly).
    pub fn merge(&mut self, other: &Accumulator) {
        for (name, h) in &other.hists {
            if let Some(mine) = self.hists.get_mut(name) {
                mine.add(h).expect("same bounds on both sides");
            }
        }
        let (a, b) = (&mut self.counters, &other.counters);
        a.requests += b.requests;
        a.ok += b.ok;
        for (k, v) in &b.errors {
            *a.errors.entry(k.clone()).or_default() += v;
        }
        a.output_tokens += b.output_tokens;
        a.counted_by_server += b.counted_by_server;
        a.counted_by_events += b.counted_by_events;
        a.count_mismatches += b.count_mismatches;
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A percentile of a histogram in microseconds (for live display).
    pub fn quantile_us(&self, name: &str, q: f64) -> Option<u64> {
        let h = self.hists.get(name)?;
        (!h.is_empty()).then(|| h.value_at_quantile(q))
    }

    /// Summarize over a measurement window of `window_s` seconds.
    pub fn summarize(&self, window_s: f64) -> Breakdown {
        let c = self.counters.clone();
        let window = window_s.max(1e-9);
        let latency_ms = Metric::ALL
            .into_iter()
            .filter_map(|m| Some((m, stats(self.hists.get(m.as_str())?, 1e-3)?)))
            .collect();
        let sched: BTreeMap<Metric, Stats> = [
            (Metric::Ttft, "ttft_from_scheduled"),
            (Metric::Total, "total_from_scheduled"),
        ]
        .into_iter()
        .filter_map(|(m, name)| Some((m, stats(self.hists.get(name)?, 1e-3)?)))
        .collect();
        Breakdown {
            requests: c.requests,
            ok: c.ok,
            failed: c.requests - c.ok,
            error_rate: if c.requests == 0 {
                0.0
            } else {
                (c.requests - c.ok) as f64 / c.requests as f64
            },
            output_tokens_per_s: c.output_tokens as f64 / window,
            requests_per_s: c.ok as f64 / window,
            window_s,
            latency_ms,
            tokens_per_s_per_request: self
                .hists
                .get("tokens_per_s_milli")
                .and_then(|h| stats(h, 1e-3)),
            from_scheduled_ms: (!sched.is_empty()).then_some(sched),
            counters: c,
            histograms: self
                .hists
                .iter()
                .filter(|(_, h)| !h.is_empty())
                .map(|(k, h)| (k.to_string(), encode(h)))
                .collect(),
        }
    }

    /// Rebuild an accumulator from a summary (for exact merging of runs).
    pub fn from_breakdown(b: &Breakdown) -> Result<Accumulator, String> {
        let mut acc = Accumulator {
            counters: b.counters.clone(),
            ..Accumulator::default()
        };
        for (name, data) in &b.histograms {
            let Some(slot) = acc.hists.get_mut(name.as_str()) else {
                return Err(format!("unknown histogram `{name}`"));
            };
            let h = decode(data).map_err(|e| format!("histogram `{name}`: {e}"))?;
            slot.add(&h)
                .map_err(|e| format!("histogram `{name}`: {e:?}"))?;
        }
        Ok(acc)
    }
}

fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

fn decode(data: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| e.to_string())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{e:?}"))
}

/// Statistics of one distribution; `scale` converts recorded units to the reported ones.
pub(crate) fn stats(h: &Histogram<u64>, scale: f64) -> Option<Stats> {
    if h.is_empty() {
        return None;
    }
    let q = |q: f64| h.value_at_quantile(q) as f64 * scale;
    Some(Stats {
        count: h.len(),
        avg: h.mean() * scale,
        min: h.min() as f64 * scale,
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        max: h.max() as f64 * scale,
    })
}

/// Summary statistics of a distribution, in the unit its field name says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub avg: f64,
    /// Smallest value.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

impl Stats {
    /// The value of one statistic.
    pub fn get(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Avg => self.avg,
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P95 => self.p95,
            Stat::P99 => self.p99,
            Stat::Max => self.max,
        }
    }
}

/// Everything measured in one scope over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Requests counted.
    pub requests: u64,
    /// Requests completed normally.
    pub ok: u64,
    /// Requests failed.
    pub failed: u64,
    /// `failed / requests`.
    pub error_rate: f64,
    /// Aggregate output tokens per second over the window.
    pub output_tokens_per_s: f64,
    /// Completed requests per second over the window.
    pub requests_per_s: f64,
    /// Length of the window in seconds.
    pub window_s: f64,
    /// Latency statistics in milliseconds, per metric.
    pub latency_ms: BTreeMap<Metric, Stats>,
    /// Per-request output tokens / total time, in tokens per second.
    pub tokens_per_s_per_request: Option<Stats>,
    /// Open loop: TTFT and total time measured from the scheduled send time (ms).
    pub from_scheduled_ms: Option<BTreeMap<Metric, Stats>>,
    /// Raw counts.
    pub counters: Counters,
    /// HDR histograms (V2 + DEFLATE, base64), microseconds; for exact merging.
    pub histograms: BTreeMap<String, String>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// Position in the sweep.
    pub index: usize,
    /// Label.
    pub name: String,
    /// Closed-loop user count.
    pub users: Option<usize>,
    /// Open-loop request rate per second.
    pub rate_per_s: Option<f64>,
    /// Replicas used.
    pub replicas: usize,
    /// Number of adapters requests were spread over (base included when used).
    pub adapters: usize,
    /// Planned measured duration in seconds.
    pub duration_s: f64,
    /// Warm-up excluded, in seconds.
    pub warmup_s: f64,
    /// False when the step was interrupted.
    pub complete: bool,
    /// Requests sent during warm-up (not counted).
    pub warmup_requests: u64,
    /// Requests cancelled in flight by an interruption (not counted).
    pub cancelled_requests: u64,
    /// All requests of the step.
    pub overall: Breakdown,
    /// Per adapter (`base` for the base model).
    pub by_adapter: BTreeMap<String, Breakdown>,
    /// Per target URL.
    pub by_target: BTreeMap<String, Breakdown>,
    /// Open loop: actual − scheduled send time, ms.
    pub send_lag_ms: Option<Stats>,
}

/// The first request to each (target, adapter): the cold-adapter penalty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdRequest {
    /// Step it fell in.
    pub step: usize,
    /// Target URL.
    pub target: String,
    /// Its TTFT in ms (none when it failed).
    pub ttft_ms: Option<f64>,
    /// Its total time in ms.
    pub total_ms: Option<f64>,
    /// Failure kind, if it failed.
    pub error: Option<String>,
}

/// loadgen's own health during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientHealth {
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
    /// CPU seconds used by loadgen (user + system).
    pub cpu_s: f64,
    /// `cpu_s / wall_s` as a percentage of one core.
    pub cpu_percent_of_one_core: f64,
    /// Cores available to loadgen.
    pub cores: usize,
    /// Conditions that may make the numbers the client's rather than the server's.
    pub warnings: Vec<String>,
}

/// Verdict on one objective for one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The objective as written (`ttft_p90_ms`).
    pub objective: String,
    /// The step checked.
    pub step: String,
    /// Measured value (none when nothing was measured, which fails).
    pub value: Option<f64>,
    /// The limit.
    pub limit: f64,
    /// Whether it held.
    pub pass: bool,
}

/// The scenario as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Seed.
    pub seed: u64,
    /// File it came from.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// The target as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Protocol spoken.
    pub protocol: String,
    /// URLs.
    pub urls: Vec<String>,
    /// Whether loadgen started the server itself.
    pub embedded: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SCHEMA`].
    pub schema: String,
    /// loadgen's version.
    pub tool_version: String,
    /// `git describe` of the working directory, when it is a repository.
    pub git_revision: Option<String>,
    /// The scenario.
    pub scenario: ScenarioInfo,
    /// The target.
    pub target: TargetInfo,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time (of the last update).
    pub ended_at: String,
    /// True until the run finished every step.
    pub partial: bool,
    /// Why the run stopped early, if it did.
    pub interrupted: Option<String>,
    /// Steps finished so far.
    pub steps: Vec<StepSummary>,
    /// First request per (target, adapter), keyed by adapter then target.
    pub cold_requests: BTreeMap<String, Vec<ColdRequest>>,
    /// Client health.
    pub health: ClientHealth,
    /// Objective verdicts (empty without objectives).
    pub slo: Vec<SloResult>,
    /// Published reference figures, when the scenario names them.
    pub reference: Option<serde_json::Value>,
}

impl Summary {
    /// Read a summary file, or `summary.json` inside a results directory.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Summary> {
        let file = if path.is_dir() {
            path.join("summary.json")
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        let summary: Summary = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a loadgen summary: {e}", file.display()))?;
        if summary.schema != SCHEMA {
            anyhow::bail!(
                "{}: schema `{}` is not `{SCHEMA}`",
                file.display(),
                summary.schema
            );
        }
        Ok(summary)
    }
}
