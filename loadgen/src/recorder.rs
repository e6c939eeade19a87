//! The one task that aggregates: it receives every [`RequestRecord`] over a
//! channel, appends it to `requests.csv` at once, and keeps the HDR
//! histograms per (step, adapter, target).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::record::{micros, RequestRecord};
use crate::scenario::{Step, StepLoad};
use crate::summary::{stats, Accumulator, ColdRequest, StepSummary};

/// Messages to the recorder.
#[derive(Debug)]
pub enum Msg {
    /// A step begins; its requests sent in `[measure_start, measure_end)` count.
    StartStep {
        /// The step.
        step: Step,
        /// Start of the measured window (after ramp-up and warm-up).
        measure_start: Instant,
        /// End of the measured window.
        measure_end: Instant,
    },
    /// A finished request.
    Record(Box<RequestRecord>),
    /// A request of `step` was cancelled in flight by an interruption.
    Cancelled {
        /// Its step.
        step: usize,
    },
    /// The step is over: reply with its summary.
    FinishStep {
        /// When the step's last request ended (or the interruption came).
        end: Instant,
        /// False when interrupted.
        complete: bool,
        /// Where the summary goes.
        reply: oneshot::Sender<StepSummary>,
    },
    /// The run is over: reply with the cold-request table.
    Finish {
        /// Where it goes.
        reply: oneshot::Sender<BTreeMap<String, Vec<ColdRequest>>>,
    },
}

/// Live figures for the progress display, updated by the recorder.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests counted in the current step (all phases).
    pub requests: AtomicU64,
    /// Failed requests in the current step.
    pub errors: AtomicU64,
    /// TTFT p90 of the current step's measured requests, µs (0 = none yet).
    pub ttft_p90_us: AtomicU64,
}

struct StepState {
    step: Step,
    measure_start: Instant,
    measure_end: Instant,
    overall: Accumulator,
    by_adapter: BTreeMap<String, Accumulator>,
    by_target: BTreeMap<String, Accumulator>,
    lag_us: Histogram<u64>,
    warmup_requests: u64,
    cancelled: u64,
    last_end: Option<Instant>,
    live_updated: Instant,
}

/// The recorder's state; [`Recorder::run`] drives it from a channel.
pub struct Recorder {
    origin: Instant,
    targets: Vec<String>,
    csv: csv::Writer<File>,
    current: Option<StepState>,
    seen: HashSet<(usize, String)>,
    cold: BTreeMap<String, Vec<ColdRequest>>,
    live: Arc<Live>,
}

/// Records that may wait for the recorder before senders are held up.
const CHANNEL_CAPACITY: usize = 16_384;
/// Rows reach the file at most this long after their request completes.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Columns of `requests.csv`; times are µs since the run started.
pub const CSV_COLUMNS: [&str; 27] = [
    "step",
    "phase",
    "user",
    "seq",
    "target",
    "adapter",
    "input_tokens",
    "max_tokens",
    "server_prompt_tokens",
    "output_tokens",
    "output_tokens_source",
    "token_events",
    "scheduled_us",
    "sent_us",
    "headers_us",
    "first_event_us",
    "first_token_us",
    "last_token_us",
    "end_us",
    "ttft_us",
    "total_us",
    "streaming_us",
    "tpot_us",
    "status",
    "error_kind",
    "error_detail",
    "cold",
];

impl Recorder {
    /// A recorder writing `requests.csv` into `dir`; times in the file are µs since `origin`.
    pub fn create(
        dir: &Path,
        origin: Instant,
        targets: Vec<String>,
        live: Arc<Live>,
    ) -> std::io::Result<Recorder> {
        let mut csv = csv::Writer::from_writer(File::create(dir.join("requests.csv"))?);
        csv.write_record(CSV_COLUMNS)?;
        csv.flush()?;
        Ok(Recorder {
            origin,
            targets,
            csv,
            current: None,
            seen: HashSet::new(),
            cold: BTreeMap::new(),
            live,
        })
    }

    /// Spawn the recorder task; returns the sender and the task handle.
    ///
    /// The channel is bounded: when the recorder falls behind (requests failing
    /// in a tight loop), senders wait instead of memory growing without limit.
    pub fn spawn(
        self,
    ) -> (
        mpsc::Sender<Msg>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (tx, tokio::spawn(self.run(rx)))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> std::io::Result<()> {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg)?,
                    None => break,
                },
                _ = tick.tick() => self.csv.flush()?,
            }
        }
        self.csv.flush()
    }

    /// Handle one message.
    pub fn handle(&mut self, msg: Msg) -> std::io::Result<()> {
        match msg {
            Msg::StartStep {
                step,
                measure_start,
                measure_end,
            } => {
                self.live.requests.store(0, Ordering::Relaxed);
                self.live.errors.store(0, Ordering::Relaxed);
                self.live.ttft_p90_us.store(0, Ordering::Relaxed);
                self.current = Some(StepState {
                    step,
                    measure_start,
                    measure_end,
                    overall: Accumulator::default(),
                    by_adapter: BTreeMap::new(),
                    by_target: BTreeMap::new(),
                    lag_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"),
                    warmup_requests: 0,
                    cancelled: 0,
                    last_end: None,
                    live_updated: Instant::now(),
                });
            }
            Msg::Record(r) => self.record(&r)?,
            Msg::Cancelled { step } => {
                if let Some(s) = self.current.as_mut().filter(|s| s.step.index == step) {
                    s.cancelled += 1;
                }
            }
            Msg::FinishStep {
                end,
                complete,
                reply,
            } => {
                if let Some(state) = self.current.take() {
                    let _ = reply.send(self.summarize(state, end, complete));
                }
            }
            Msg::Finish { reply } => {
                self.csv.flush()?;
                let _ = reply.send(std::mem::take(&mut self.cold));
            }
        }
        Ok(())
    }

    fn record(&mut self, r: &RequestRecord) -> std::io::Result<()> {
        let target = self
            .targets
            .get(r.target)
            .cloned()
            .unwrap_or_else(|| format!("#{}", r.target));
        let cold = self.seen.insert((r.target, r.adapter.label().to_owned()));
        if cold {
            self.cold
                .entry(r.adapter.label().to_owned())
                .or_default()
                .push(ColdRequest {
                    step: r.step,
                    target: target.clone(),
                    ttft_ms: r.ttft().map(|d| d.as_secs_f64() * 1e3),
                    total_ms: r.total().map(|d| d.as_secs_f64() * 1e3),
                    error: r.failure.as_ref().map(|f| f.kind.name()),
                });
        }
        let phase = match &mut self.current {
            Some(s) if s.step.index == r.step => {
                self.live.requests.fetch_add(1, Ordering::Relaxed);
                if r.failure.is_some() {
                    self.live.errors.fetch_add(1, Ordering::Relaxed);
                }
                if r.sent < s.measure_start {
                    s.warmup_requests += 1;
                    "warmup"
                } else if r.sent >= s.measure_end {
                    "after"
                } else {
                    s.overall.add(r);
                    s.by_adapter
                        .entry(r.adapter.label().to_owned())
                        .or_default()
                        .add(r);
                    s.by_target.entry(target.clone()).or_default().add(r);
                    if let Some(sched) = r.scheduled {
                        s.lag_us.saturating_record(
                            u64::from(micros(r.sent.saturating_duration_since(sched))).max(1),
                        );
                    }
                    s.last_end = Some(s.last_end.map_or(r.end, |e| e.max(r.end)));
                    if s.live_updated.elapsed().as_millis() >= 250 {
                        s.live_updated = Instant::now();
                        let p90 = s.overall.quantile_us("ttft", 0.9).unwrap_or(0);
                        self.live.ttft_p90_us.store(p90, Ordering::Relaxed);
                    }
                    "measured"
                }
            }
            _ => "orphan",
        };
        self.write_row(r, phase, &target, cold)
    }

    fn write_row(
        &mut self,
        r: &RequestRecord,
        phase: &str,
        target: &str,
        cold: bool,
    ) -> std::io::Result<()> {
        let at = |t: Option<Instant>| {
            t.map(|t| {
                t.saturating_duration_since(self.origin)
                    .as_micros()
                    .to_string()
            })
            .unwrap_or_default()
        };
        let dur = |d: Option<std::time::Duration>| {
            d.map(|d| d.as_micros().to_string()).unwrap_or_default()
        };
        let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        let (n, source) = r.output_tokens();
        let (kind, detail) = match &r.failure {
            Some(f) => (f.kind.name(), f.detail.clone()),
            None => (String::new(), String::new()),
        };
        let fields: [String; 27] = [
            r.step.to_string(),
            phase.to_owned(),
            r.user.to_string(),
            r.seq.to_string(),
            target.to_owned(),
            r.adapter.label().to_owned(),
            opt(r.input_tokens),
            r.max_tokens.to_string(),
            opt(r.stamps.server_prompt_tokens),
            n.to_string(),
            format!("{source:?}").to_lowercase(),
            r.stamps.token_events.to_string(),
            at(r.scheduled),
            at(Some(r.sent)),
            at(r.stamps.headers),
            at(r.stamps.first_event),
            at(r.stamps.first_token),
            at(r.stamps.last_token),
            at(Some(r.end)),
            dur(r.ttft()),
            dur(r.total()),
            dur(r.streaming()),
            dur(r.tpot()),
            r.stamps.status.map(|s| s.to_string()).unwrap_or_default(),
            kind,
            detail,
            cold.to_string(),
        ];
        // Buffered, flushed every FLUSH_EVERY and at each step's end: an
        // interrupted run keeps every row.
        self.csv
            .write_record(&fields)
            .map_err(std::io::Error::other)
    }

    fn summarize(&self, s: StepState, end: Instant, complete: bool) -> StepSummary {
        let window_end = if complete {
            s.measure_end.max(s.last_end.unwrap_or(s.measure_end))
        } else {
            end.min(s.measure_end).max(s.last_end.unwrap_or(end))
        };
        let window_s = window_end
            .saturating_duration_since(s.measure_start)
            .as_secs_f64();
        let lag = stats(&s.lag_us, 1e-3);
        let step = &s.step;
        StepSummary {
            index: step.index,
            name: step.name.clone(),
            users: step.users(),
            rate_per_s: match step.load {
                StepLoad::Rate { per_s, .. } => Some(per_s),
                StepLoad::Users(_) => None,
            },
            replicas: step.replicas,
            adapters: step.adapters.choices.len(),
            duration_s: step.duration.as_secs_f64(),
            warmup_s: step.warmup.as_secs_f64(),
            complete,
            warmup_requests: s.warmup_requests,
            cancelled_requests: s.cancelled,
            overall: s.overall.summarize(window_s),
            by_adapter: s
                .by_adapter
                .iter()
                .map(|(k, a)| (k.clone(), a.summarize(window_s)))
                .collect(),
            by_target: s
                .by_target
                .iter()
                .map(|(k, a)| (k.clone(), a.summarize(window_s)))
                .collect(),
            send_lag_ms: lag,
        }
    }
}
