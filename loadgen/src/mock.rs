//! A loopback SSE server with controlled timings and faults, speaking the
//! LoRAX, TGI and OpenAI stream formats. Used by `loadgen calibrate` and by
//! the integration tests; it does no model work.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;

/// Which server's stream format to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `data:{json}` with `details.prompt_tokens`.
    Lorax,
    /// `data: {json}` with `index` and `details.input_length`.
    Tgi,
    /// OpenAI chunks (role-only first chunk for chat, usage chunk, `[DONE]`).
    OpenAi,
}

/// A fault injected into matching requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a LoRAX-style JSON error.
    Status(u16),
    /// Break the connection after this many tokens.
    CloseAfter(u32),
    /// Send one token, then nothing (until the client gives up).
    Stall,
    /// Send an error event inside the 200 stream after this many tokens.
    ErrorEvent(u32),
    /// Send an event that is not JSON.
    Garbage,
}

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Stream format.
    pub flavor: Flavor,
    /// Delay from request receipt to the first token.
    pub ttft: Duration,
    /// Delay between tokens.
    pub gap: Duration,
    /// Fault to inject.
    pub fault: Option<Fault>,
    /// Only requests for this adapter get the fault (`None`: all requests).
    pub fault_adapter: Option<String>,
    /// Report this many output tokens in the final count instead of the true number.
    pub misreport_tokens: Option<u32>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            flavor: Flavor::Lorax,
            ttft: Duration::from_millis(20),
            gap: Duration::from_millis(5),
            fault: None,
            fault_adapter: None,
            misreport_tokens: None,
        }
    }
}

/// When the server wrote a calibration request's first and last token.
#[derive(Debug, Clone, Copy)]
pub struct Emits {
    /// First token written.
    pub first: Instant,
    /// Last token written.
    pub last: Instant,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct MockStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests per adapter (`base` when none).
    pub by_adapter: Mutex<BTreeMap<String, u64>>,
    /// The `Authorization` header of the latest request, if it had one.
    pub last_authorization: Mutex<Option<String>>,
    /// Emission times of calibration requests (prompt `calib-<id> ...`), by id.
    pub emits: Mutex<BTreeMap<u64, Emits>>,
}

struct Shared {
    config: MockConfig,
    stats: Arc<MockStats>,
}

/// A running mock server; stops when dropped.
pub struct MockServer {
    /// Bound address on 127.0.0.1.
    pub addr: SocketAddr,
    /// What it saw.
    pub stats: Arc<MockStats>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockServer {
    /// Start on an ephemeral loopback port, on the current runtime.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Without TCP_NODELAY, Nagle holds the first token behind the client's
        // delayed ACK of the headers, adding tens of milliseconds to TTFT.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let stats = Arc::new(MockStats::default());
        let shared = Arc::new(Shared {
            config,
            stats: Arc::clone(&stats),
        });
        let app = Router::new()
            .route("/generate_stream", post(handle))
            .route("/v1/completions", post(handle))
            .route("/v1/chat/completions", post(handle))
            .with_state(shared);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MockServer {
            addr,
            stats,
            shutdown: Some(tx),
        })
    }

    /// Base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Ask {
    adapter: Option<String>,
    tokens: u32,
    chat: bool,
    usage: bool,
    calib_id: Option<u64>,
}

fn parse_ask(body: &serde_json::Value, chat: bool) -> Ask {
    let params = &body["parameters"];
    let adapter = params["adapter_id"]
        .as_str()
        .or(body["model"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let tokens = params["max_new_tokens"]
        .as_u64()
        .or(body["max_tokens"].as_u64())
        .unwrap_or(16) as u32;
    let prompt = body["inputs"]
        .as_str()
        .or(body["prompt"].as_str())
        .or(body["messages"][0]["content"].as_str())
        .unwrap_or("");
    let calib_id = prompt
        .strip_prefix("calib-")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok());
    Ask {
        adapter,
        tokens: tokens.max(1),
        chat,
        usage: body["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
        calib_id,
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let received = tokio::time::Instant::now();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *shared
        .stats
        .last_authorization
        .lock()
        .expect("not poisoned") = auth;
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error_response(StatusCode::UNPROCESSABLE_ENTITY, "invalid JSON");
    };
    let ask = parse_ask(&json, uri.path().ends_with("/chat/completions"));
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    *shared
        .stats
        .by_adapter
        .lock()
        .expect("not poisoned")
        .entry(ask.adapter.clone().unwrap_or_else(|| "base".into()))
        .or_default() += 1;
    let cfg = &shared.config;
    let faulty = cfg
        .fault_adapter
        .as_ref()
        .is_none_or(|a| ask.adapter.as_ref() == Some(a));
    let fault = if faulty { cfg.fault } else { None };
    if let Some(Fault::Status(code)) = fault {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error_response(status, "injected failure");
    }
    let events = script(cfg, &ask, fault);
    let stats = Arc::clone(&shared.stats);
    let (ttft, gap) = (cfg.ttft, cfg.gap);
    let calib_id = ask.calib_id;
    let state = (events.into_iter(), 0usize, None::<Instant>);
    let body_stream = stream::unfold(state, move |(mut it, token_i, first)| {
        let stats = Arc::clone(&stats);
        async move {
            let item = it.next()?;
            let mut first = first;
            match item {
                Step::Token(text) | Step::Final(text) => {
                    let due = received + ttft + gap * token_i as u32;
                    tokio::time::sleep_until(due).await;
                    let now = Instant::now();
                    let first_at = *first.get_or_insert(now);
                    if let Some(id) = calib_id {
                        stats.emits.lock().expect("not poisoned").insert(
                            id,
                            Emits {
                                first: first_at,
                                last: now,
                            },
                        );
                    }
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(text)),
                        (it, token_i + 1, first),
                    ))
                }
                Step::Plain(text) => Some((Ok(Bytes::from(text)), (it, token_i, first))),
                Step::Stall => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    None
                }
                Step::Break => Some((
                    Err(std::io::Error::other("injected disconnect")),
                    (it, token_i, first),
                )),
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body_stream))
        .expect("static response parts are valid")
}

enum Step {
    /// A token event, sent on the token schedule.
    Token(String),
    /// The last token event (LoRAX/TGI carry the details on it).
    Final(String),
    /// An event sent right away (role chunk, usage, `[DONE]`, errors).
    Plain(String),
    /// Hang.
    Stall,
    /// Break the connection.
    Break,
}

fn script(cfg: &MockConfig, ask: &Ask, fault: Option<Fault>) -> Vec<Step> {
    let n = ask.tokens;
    let reported = cfg.misreport_tokens.unwrap_or(n);
    let mut out = Vec::with_capacity(n as usize + 4);
    let prefix = match cfg.flavor {
        Flavor::Lorax => "data:",
        Flavor::Tgi | Flavor::OpenAi => "data: ",
    };
    if cfg.flavor == Flavor::OpenAi && ask.chat {
        out.push(Step::Plain(format!(
            "{prefix}{{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\"}}}}]}}\n\n"
        )));
    }
    for i in 0..n {
        match fault {
            Some(Fault::CloseAfter(k)) if i == k => {
                out.push(Step::Break);
                return out;
            }
            Some(Fault::ErrorEvent(k)) if i == k => {
                let body = match cfg.flavor {
                    Flavor::OpenAi => {
                        "{\"error\":{\"message\":\"injected failure\",\"type\":\"server_error\"}}"
                    }
                    _ => "{\"error\":\"injected failure\",\"error_type\":\"generation\"}",
                };
                out.push(Step::Plain(format!("{prefix}{body}\n\n")));
                return out;
            }
            Some(Fault::Stall) if i == 1 => {
                out.push(Step::Stall);
                return out;
            }
            Some(Fault::Garbage) if i == 1 => {
                out.push(Step::Plain(format!("{prefix}{{this is not json\n\n")));
                return out;
            }
            _ => {}
        }
        let last = i + 1 == n;
        let text = format!(" t{i}");
        let event = match cfg.flavor {
            Flavor::Lorax | Flavor::Tgi => {
                let tgi = cfg.flavor == Flavor::Tgi;
                let details = if last {
                    let len_key = if tgi { "input_length" } else { "prompt_tokens" };
                    format!(
                        "{{\"finish_reason\":\"length\",\"{len_key}\":5,\"generated_tokens\":{reported},\"seed\":null}}"
                    )
                } else {
                    "null".to_owned()
                };
                let generated = if last { "\"done\"" } else { "null" };
                let index = if tgi {
                    format!("\"index\":{i},")
                } else {
                    String::new()
                };
                format!(
                    "{prefix}{{{index}\"token\":{{\"id\":{i},\"text\":\"{text}\",\"logprob\":-0.5,\"special\":false}},\"generated_text\":{generated},\"details\":{details}}}\n\n"
                )
            }
            Flavor::OpenAi => {
                if ask.chat {
                    format!("{prefix}{{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n")
                } else {
                    format!("{prefix}{{\"object\":\"text_completion\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"finish_reason\":null}}]}}\n\n")
                }
            }
        };
        out.push(if last {
            Step::Final(event)
        } else {
            Step::Token(event)
        });
    }
    if cfg.flavor == Flavor::OpenAi {
        if ask.usage {
            out.push(Step::Plain(format!(
                "{prefix}{{\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{reported},\"total_tokens\":{}}}}}\n\n",
                reported + 5
            )));
        }
        out.push(Step::Plain(format!("{prefix}[DONE]\n\n")));
    }
    out
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "error_type": "generation" });
    (status, axum::Json(body)).into_response()
}
