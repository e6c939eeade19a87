//! One request's raw measurements: the only thing the request path produces.
//!
//! Timestamps are `Instant`s (monotonic); everything derived from them is
//! computed by the recorder, off the request path.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::scenario::Adapter;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The server answered with a non-success HTTP status.
    Http(u16),
    /// The request did not finish within the target's timeout.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The connection or stream ended before the end marker.
    StreamBroken,
    /// A stream event could not be parsed.
    Protocol,
    /// The server sent an error event inside a 200 stream.
    ServerError,
}

impl ErrorKind {
    /// Stable name used in files (`http_503`, `timeout`, ...).
    pub fn name(self) -> String {
        match self {
            ErrorKind::Http(code) => format!("http_{code}"),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::StreamBroken => "stream_broken".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::ServerError => "server_error_event".into(),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A failure: its kind and a short detail for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Classification, used for counting.
    pub kind: ErrorKind,
    /// Human detail (status body, parser message), at most a few hundred bytes.
    pub detail: String,
}

/// Where the output token count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountSource {
    /// The server's own count (`details.generated_tokens` or `usage.completion_tokens`).
    Server,
    /// The number of token events received.
    Events,
}

/// Instants stamped along one request, in order.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    /// Response headers received.
    pub headers: Option<Instant>,
    /// First SSE event parsed (any kind).
    pub first_event: Option<Instant>,
    /// First event that carries a token.
    pub first_token: Option<Instant>,
    /// Latest event that carried a token.
    pub last_token: Option<Instant>,
    /// Number of events that carried a token.
    pub token_events: u32,
    /// Gaps between consecutive token events, in microseconds.
    pub itl_us: Vec<u32>,
    /// Prompt length according to the server.
    pub server_prompt_tokens: Option<u32>,
    /// Output length according to the server.
    pub server_output_tokens: Option<u32>,
    /// HTTP status.
    pub status: Option<u16>,
}

impl Stamps {
    /// Note a token event seen at `now`.
    pub fn token(&mut self, now: Instant) {
        if let Some(prev) = self.last_token {
            self.itl_us.push(micros(now - prev));
        } else {
            self.first_token = Some(now);
        }
        self.last_token = Some(now);
        self.token_events += 1;
    }
}

/// One finished (or failed) request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Index of the step it belongs to.
    pub step: usize,
    /// The user (closed loop) or arrival stream (open loop) that sent it.
    pub user: usize,
    /// The request's number within its user's sequence.
    pub seq: u64,
    /// Model the request was for.
    pub adapter: Adapter,
    /// Index of the target URL it was sent to.
    pub target: usize,
    /// Requested prompt length in tokens (synthetic prompts) or `None` (files).
    pub input_tokens: Option<u32>,
    /// Requested output length.
    pub max_tokens: u32,
    /// Scheduled send time (open loop only).
    pub scheduled: Option<Instant>,
    /// When the request was handed to the HTTP client.
    pub sent: Instant,
    /// Stamps along the way.
    pub stamps: Stamps,
    /// When the stream ended or the request failed.
    pub end: Instant,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
}

impl RequestRecord {
    /// Time to first token, when a token arrived.
    pub fn ttft(&self) -> Option<Duration> {
        self.stamps.first_token.map(|t| t - self.sent)
    }

    /// Request sent → last token.
    pub fn total(&self) -> Option<Duration> {
        self.stamps.last_token.map(|t| t - self.sent)
    }

    /// First token → last token.
    pub fn streaming(&self) -> Option<Duration> {
        Some(self.stamps.last_token? - self.stamps.first_token?)
    }

    /// Output token count and where it came from.
    pub fn output_tokens(&self) -> (u32, CountSource) {
        match self.stamps.server_output_tokens {
            Some(n) => (n, CountSource::Server),
            None => (self.stamps.token_events, CountSource::Events),
        }
    }

    /// Time per output token after the first (`streaming / (n - 1)`), for n ≥ 2.
    pub fn tpot(&self) -> Option<Duration> {
        let (n, _) = self.output_tokens();
        let streaming = self.streaming()?;
        (n >= 2).then(|| streaming / (n - 1))
    }
}

/// Whole microseconds of `d`, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
