//! loadgen's own health: CPU time used, and warnings when the client, not the
//! server, may be what the numbers measure.

use std::time::{Duration, Instant};

use crate::summary::{ClientHealth, StepSummary};

/// Open-loop send lag p99 above this is reported: the client could not keep the schedule.
const LAG_WARN_MS: f64 = 10.0;

/// Wall and CPU time since the run started.
#[derive(Debug)]
pub struct CpuClock {
    wall: Instant,
    cpu: Duration,
}

impl CpuClock {
    /// Start measuring now.
    pub fn start() -> CpuClock {
        CpuClock {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// Health so far, with warnings drawn from the steps' measurements.
    pub fn health(&self, steps: &[StepSummary]) -> ClientHealth {
        let wall_s = self.wall.elapsed().as_secs_f64();
        let cpu_s = process_cpu().saturating_sub(self.cpu).as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let percent = if wall_s > 0.0 {
            cpu_s / wall_s * 100.0
        } else {
            0.0
        };
        let mut warnings = Vec::new();
        if percent > 80.0 * cores as f64 {
            warnings.push(format!(
                "loadgen used {percent:.0}% CPU of {cores} cores: the client may be the bottleneck"
            ));
        }
        for s in steps {
            if let Some(lag) = &s.send_lag_ms {
                if lag.p99 > LAG_WARN_MS {
                    warnings.push(format!(
                        "step `{}`: send lag p99 {:.1} ms (max {:.1} ms): requests left later than scheduled \
                         (server queueing at the in-flight cap, or a saturated client); latency from the \
                         scheduled time includes it",
                        s.name, lag.p99, lag.max
                    ));
                }
            }
        }
        ClientHealth {
            wall_s,
            cpu_s,
            cpu_percent_of_one_core: percent,
            cores,
            warnings,
        }
    }
}

/// CPU time (user + system) of this process.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
