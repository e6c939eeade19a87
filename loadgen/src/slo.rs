//! Service-level objectives: checked per step at the end of a run.

use crate::scenario::Slo;
use crate::summary::{SloResult, StepSummary};

/// Check every objective against every step's overall numbers.
pub fn evaluate(slos: &[Slo], steps: &[StepSummary]) -> Vec<SloResult> {
    let mut out = Vec::new();
    for step in steps {
        let o = &step.overall;
        for slo in slos {
            let (objective, value, limit, pass) = match *slo {
                Slo::Latency { key, max_ms } => {
                    let value = o.latency_ms.get(&key.metric).map(|s| s.get(key.stat));
                    (
                        key.to_string(),
                        value,
                        max_ms,
                        value.is_some_and(|v| v <= max_ms),
                    )
                }
                Slo::ErrorRate(max) => (
                    "error_rate".to_owned(),
                    Some(o.error_rate),
                    max,
                    o.error_rate <= max,
                ),
                Slo::MinOutputTokensPerS(min) => (
                    "min_output_tokens_per_s".to_owned(),
                    Some(o.output_tokens_per_s),
                    min,
                    o.output_tokens_per_s >= min,
                ),
                Slo::MinRequestsPerS(min) => (
                    "min_requests_per_s".to_owned(),
                    Some(o.requests_per_s),
                    min,
                    o.requests_per_s >= min,
                ),
            };
            out.push(SloResult {
                objective,
                step: step.name.clone(),
                value,
                limit,
                pass,
            });
        }
    }
    out
}
