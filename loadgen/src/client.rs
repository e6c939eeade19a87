//! The request path: send one streaming request and stamp what happens.
//!
//! It does nothing but I/O and `Instant::now()`: no file writes, no shared
//! locks, no statistics. The caller hands the result to the recorder.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;

use crate::protocol::{clip, parse_event};
use crate::record::{ErrorKind, Failure, Stamps};
use crate::scenario::Protocol;

/// A request ready to send: URL, body and headers resolved in advance.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// Full URL of the streaming endpoint.
    pub url: String,
    /// JSON body.
    pub body: Vec<u8>,
    /// Protocol of the response stream.
    pub protocol: Protocol,
    /// `Authorization: Bearer` value, if any.
    pub bearer: Option<std::sync::Arc<str>>,
    /// Limit on the whole request, stream included.
    pub timeout: Duration,
}

/// Send `req` and read its stream to the end. Returns the stamps, the end
/// instant and the failure, if any. `sent` is stamped just before the request
/// is handed to the client.
pub async fn send(
    client: &reqwest::Client,
    req: PreparedRequest,
) -> (Instant, Stamps, Instant, Option<Failure>) {
    let mut stamps = Stamps::default();
    let timeout = req.timeout;
    let sent = Instant::now();
    let result = tokio::time::timeout(timeout, exchange(client, req, &mut stamps)).await;
    let end = Instant::now();
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(_) => Some(Failure {
            kind: ErrorKind::Timeout,
            detail: format!(
                "no complete response within {}",
                humantime::format_duration(timeout)
            ),
        }),
    };
    (sent, stamps, end, failure)
}

async fn exchange(
    client: &reqwest::Client,
    req: PreparedRequest,
    stamps: &mut Stamps,
) -> Result<(), Failure> {
    let mut builder = client
        .post(&req.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .body(req.body);
    if let Some(token) = &req.bearer {
        builder = builder.bearer_auth(token);
    }
    let response = builder.send().await.map_err(transport_failure)?;
    stamps.headers = Some(Instant::now());
    let status = response.status();
    stamps.status = Some(status.as_u16());
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(Failure {
            kind: ErrorKind::Http(status.as_u16()),
            detail: clip(body.trim()).to_owned(),
        });
    }
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let event = event.map_err(|e| Failure {
            kind: ErrorKind::StreamBroken,
            detail: e.to_string(),
        })?;
        if stamps.first_event.is_none() {
            stamps.first_event = Some(now);
        }
        if event.data.is_empty() {
            continue;
        }
        let parsed = parse_event(req.protocol, &event.data).map_err(|e| Failure {
            kind: ErrorKind::Protocol,
            detail: e.to_string(),
        })?;
        if let Some(message) = parsed.error {
            return Err(Failure {
                kind: ErrorKind::ServerError,
                detail: clip(&message).to_owned(),
            });
        }
        if parsed.carries_token {
            stamps.token(now);
        }
        if parsed.prompt_tokens.is_some() {
            stamps.server_prompt_tokens = parsed.prompt_tokens;
        }
        if parsed.completion_tokens.is_some() {
            stamps.server_output_tokens = parsed.completion_tokens;
        }
        if parsed.end {
            return Ok(());
        }
    }
    Err(Failure {
        kind: ErrorKind::StreamBroken,
        detail: format!(
            "stream closed after {} token events without its end marker",
            stamps.token_events
        ),
    })
}

fn transport_failure(e: reqwest::Error) -> Failure {
    let kind = if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::StreamBroken
    };
    // Walk the source chain: reqwest's top-level message alone says little.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    Failure { kind, detail }
}
