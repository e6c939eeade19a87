//! The progress bar: step, elapsed time, requests, errors, live TTFT p90.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::recorder::Live;
use crate::scenario::{Scenario, Step};
use crate::summary::StepSummary;

/// Progress display on stderr (hidden when disabled or not a terminal).
pub struct Progress {
    bar: ProgressBar,
    steps: usize,
    live: Arc<Live>,
    ticker: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    /// A display for `scenario`; `enabled = false` draws nothing.
    pub fn new(enabled: bool, scenario: &Scenario, live: Arc<Live>) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if enabled {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{elapsed_precise}] {wide_bar} {pos}/{len}s {msg}",
            )
            .expect("static template"),
        );
        Progress {
            bar,
            steps: scenario.steps.len(),
            live,
            ticker: std::sync::Mutex::new(None),
        }
    }

    /// A step starts; it is planned to last `planned`.
    pub fn start_step(&self, step: &Step, planned: Duration) {
        self.bar.reset();
        self.bar.set_length(planned.as_secs().max(1));
        self.bar.set_prefix(format!(
            "step {}/{} ({})",
            step.index + 1,
            self.steps,
            step.name
        ));
        let (bar, live) = (self.bar.clone(), Arc::clone(&self.live));
        let handle = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_position(start.elapsed().as_secs().min(bar.length().unwrap_or(0)));
                let p90 = live.ttft_p90_us.load(Ordering::Relaxed);
                bar.set_message(format!(
                    "req {} err {} ttft p90 {}",
                    live.requests.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                    if p90 == 0 {
                        "-".to_owned()
                    } else {
                        format!("{:.1} ms", p90 as f64 / 1e3)
                    }
                ));
            }
        });
        if let Some(old) = self.ticker.lock().expect("not poisoned").replace(handle) {
            old.abort();
        }
    }

    /// A step ended: print its one-line result above the bar.
    pub fn finish_step(&self, s: &StepSummary) {
        if let Some(t) = self.ticker.lock().expect("not poisoned").take() {
            t.abort();
        }
        let o = &s.overall;
        let ttft = o.latency_ms.get(&crate::metric::Metric::Ttft);
        self.bar.println(format!(
            "step {} ({}): {} requests, {} failed, {:.1} output tok/s, TTFT avg {} p90 {}{}",
            s.index + 1,
            s.name,
            o.requests,
            o.failed,
            o.output_tokens_per_s,
            ttft.map_or("-".into(), |t| format!("{:.1} ms", t.avg)),
            ttft.map_or("-".into(), |t| format!("{:.1} ms", t.p90)),
            if s.complete { "" } else { " (interrupted)" }
        ));
    }

    /// The run is over.
    pub fn done(&self) {
        if let Some(t) = self.ticker.lock().expect("not poisoned").take() {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
