//! Names of the latency metrics and their statistics, shared by scenario SLOs,
//! reference figures, summaries and tables.
//!
//! Definitions (stated in the README and the report):
//! - `ttft`: request sent → first event that carries a token;
//! - `total`: request sent → last token received;
//! - `streaming`: first token → last token;
//! - `tpot`: time per output token after the first, `streaming / (tokens − 1)`
//!   (vLLM's TPOT);
//! - `itl`: gaps between consecutive token events (vLLM's ITL).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A latency metric measured per request (or per token gap for `Itl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Time to first token.
    Ttft,
    /// Total request time (sent → last token).
    Total,
    /// Token streaming time (first → last token).
    Streaming,
    /// Time per output token after the first.
    Tpot,
    /// Inter-token latency (gap between token events).
    Itl,
}

impl Metric {
    /// All metrics, in table order.
    pub const ALL: [Metric; 5] = [
        Metric::Total,
        Metric::Ttft,
        Metric::Streaming,
        Metric::Tpot,
        Metric::Itl,
    ];

    /// The short name used in keys and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::Total => "total",
            Metric::Streaming => "streaming",
            Metric::Tpot => "tpot",
            Metric::Itl => "itl",
        }
    }

    /// The human label used in tables, after the LoRA Land report's wording.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Ttft => "time to first token",
            Metric::Total => "total request time",
            Metric::Streaming => "token streaming time",
            Metric::Tpot => "time per output token",
            Metric::Itl => "inter-token latency",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// Arithmetic mean.
    Avg,
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Maximum.
    Max,
}

impl Stat {
    /// All statistics, in table order.
    pub const ALL: [Stat; 6] = [
        Stat::Avg,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::Max,
    ];

    /// The short name used in keys and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Avg => "avg",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Max => "max",
        }
    }

    /// The quantile in `[0, 1]`, or `None` for the mean.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::Avg => None,
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
            Stat::Max => Some(1.0),
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A latency key such as `ttft_p90_ms`: a metric, a statistic, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LatencyKey {
    /// Which metric.
    pub metric: Metric,
    /// Which statistic of it.
    pub stat: Stat,
}

impl LatencyKey {
    /// Text describing the accepted forms, for error messages.
    pub const FORMS: &'static str =
        "<metric>_<stat>_ms with metric one of total, ttft, streaming, \
         tpot, itl and stat one of avg, p50, p90, p95, p99, max (e.g. ttft_p90_ms)";
}

impl fmt::Display for LatencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_ms", self.metric, self.stat)
    }
}

impl FromStr for LatencyKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let rest = s.strip_suffix("_ms").ok_or(())?;
        let (metric, stat) = rest.rsplit_once('_').ok_or(())?;
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == metric)
            .ok_or(())?;
        let stat = Stat::ALL
            .into_iter()
            .find(|st| st.as_str() == stat)
            .ok_or(())?;
        Ok(LatencyKey { metric, stat })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_keys_round_trip() {
        for metric in Metric::ALL {
            for stat in Stat::ALL {
                let key = LatencyKey { metric, stat };
                assert_eq!(key.to_string().parse::<LatencyKey>(), Ok(key));
            }
        }
        assert!("ttft_p90".parse::<LatencyKey>().is_err());
        assert!("ttft_p42_ms".parse::<LatencyKey>().is_err());
        assert!("latency_p90_ms".parse::<LatencyKey>().is_err());
    }
}
