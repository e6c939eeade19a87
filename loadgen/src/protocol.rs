//! Wire formats: request bodies for each protocol and the parsing of one SSE
//! `data:` payload into what matters for timing.
//!
//! LoRAX streams `data:{json}` (no space), TGI `data: {json}`; the SSE decoder
//! strips the optional space, so both reach [`parse_event`] the same way. The
//! field differences (`prompt_tokens` vs `input_length`) are aliases here.

use serde::{Deserialize, Serialize};

use crate::scenario::{Adapter, Protocol};

/// What one request asks for, independent of the protocol.
#[derive(Debug, Clone)]
pub struct GenerationRequest<'a> {
    /// Prompt text.
    pub prompt: &'a str,
    /// Base model or adapter.
    pub adapter: &'a Adapter,
    /// Output length to ask for.
    pub max_tokens: u32,
    /// Ask the server to ignore EOS (so outputs have `max_tokens` tokens).
    pub ignore_eos: bool,
    /// The `model` sent to OpenAI-compatible servers for the base model.
    pub base_model: Option<&'a str>,
}

/// The path of the streaming endpoint for a protocol.
pub fn stream_path(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Lorax => "/generate_stream",
        Protocol::OpenaiCompletions => "/v1/completions",
        Protocol::OpenaiChat => "/v1/chat/completions",
    }
}

#[derive(Serialize)]
struct LoraxRequest<'a> {
    inputs: &'a str,
    parameters: LoraxParameters<'a>,
}

#[derive(Serialize)]
struct LoraxParameters<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    adapter_id: Option<&'a str>,
    max_new_tokens: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignore_eos_token: bool,
    details: bool,
}

#[derive(Serialize)]
struct OpenAiRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<[ChatMessage<'a>; 1]>,
    max_tokens: u32,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignore_eos: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_tokens: Option<u32>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// Serialize the streaming request body for `protocol`.
pub fn request_body(protocol: Protocol, req: &GenerationRequest<'_>) -> Vec<u8> {
    let adapter = match req.adapter {
        Adapter::Base => None,
        Adapter::Named(name) => Some(&**name),
    };
    let result = match protocol {
        Protocol::Lorax => serde_json::to_vec(&LoraxRequest {
            inputs: req.prompt,
            parameters: LoraxParameters {
                adapter_id: adapter,
                max_new_tokens: req.max_tokens,
                ignore_eos_token: req.ignore_eos,
                details: true,
            },
        }),
        Protocol::OpenaiCompletions | Protocol::OpenaiChat => {
            let chat = protocol == Protocol::OpenaiChat;
            serde_json::to_vec(&OpenAiRequest {
                model: adapter.or(req.base_model).unwrap_or(""),
                prompt: (!chat).then_some(req.prompt),
                messages: chat.then_some([ChatMessage {
                    role: "user",
                    content: req.prompt,
                }]),
                max_tokens: req.max_tokens,
                stream: true,
                stream_options: StreamOptions {
                    include_usage: true,
                },
                ignore_eos: req.ignore_eos,
                min_tokens: req.ignore_eos.then_some(req.max_tokens),
            })
        }
    };
    result.expect("request bodies are plain structs of strings and numbers")
}

/// What one SSE `data:` payload says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedEvent {
    /// The event carries generated token text (0 or 1: one event is one token
    /// event, whatever its text holds).
    pub carries_token: bool,
    /// Prompt length as counted by the server, when it says.
    pub prompt_tokens: Option<u32>,
    /// Output length as counted by the server, when it says.
    pub completion_tokens: Option<u32>,
    /// The stream's normal end marker (`[DONE]`, or LoRAX's final event).
    pub end: bool,
    /// An error reported inside the stream.
    pub error: Option<String>,
}

/// Why a payload could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unparseable stream event: {0}")]
pub struct ParseError(pub String);

#[derive(Deserialize)]
struct LoraxEvent {
    token: Option<LoraxToken>,
    generated_text: Option<String>,
    details: Option<LoraxDetails>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LoraxToken {
    #[allow(dead_code)]
    id: Option<i64>,
}

#[derive(Deserialize)]
struct LoraxDetails {
    #[serde(alias = "input_length")]
    prompt_tokens: Option<u32>,
    generated_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct OpenAiChunk {
    #[serde(default)]
    choices: Vec<OpenAiChoice>,
    usage: Option<OpenAiUsage>,
    error: Option<serde_json::Value>,
    object: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    text: Option<String>,
    delta: Option<OpenAiDelta>,
}

#[derive(Deserialize)]
struct OpenAiDelta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// Parse one SSE `data:` payload of `protocol`.
pub fn parse_event(protocol: Protocol, data: &str) -> Result<ParsedEvent, ParseError> {
    let data = data.trim();
    match protocol {
        Protocol::Lorax => parse_lorax(data),
        Protocol::OpenaiCompletions | Protocol::OpenaiChat => parse_openai(data),
    }
}

fn parse_lorax(data: &str) -> Result<ParsedEvent, ParseError> {
    let ev: LoraxEvent =
        serde_json::from_str(data).map_err(|e| ParseError(format!("{e}: {}", clip(data))))?;
    if let Some(error) = ev.error {
        return Ok(ParsedEvent {
            error: Some(error_text(&error)),
            ..Default::default()
        });
    }
    if ev.token.is_none() && ev.generated_text.is_none() {
        return Err(ParseError(format!(
            "neither `token` nor `generated_text`: {}",
            clip(data)
        )));
    }
    let details = ev.details.as_ref();
    Ok(ParsedEvent {
        carries_token: ev.token.is_some(),
        prompt_tokens: details.and_then(|d| d.prompt_tokens),
        completion_tokens: details.and_then(|d| d.generated_tokens),
        end: ev.generated_text.is_some(),
        error: None,
    })
}

fn parse_openai(data: &str) -> Result<ParsedEvent, ParseError> {
    if data == "[DONE]" {
        return Ok(ParsedEvent {
            end: true,
            ..Default::default()
        });
    }
    let chunk: OpenAiChunk =
        serde_json::from_str(data).map_err(|e| ParseError(format!("{e}: {}", clip(data))))?;
    if let Some(error) = chunk.error {
        return Ok(ParsedEvent {
            error: Some(error_text(&error)),
            ..Default::default()
        });
    }
    if chunk.object.as_deref() == Some("error") {
        return Ok(ParsedEvent {
            error: Some(chunk.message.unwrap_or_else(|| "error object".into())),
            ..Default::default()
        });
    }
    let carries_token = chunk.choices.iter().any(|c| {
        let text = c
            .text
            .as_deref()
            .or(c.delta.as_ref().and_then(|d| d.content.as_deref()));
        text.is_some_and(|t| !t.is_empty())
    });
    let usage = chunk.usage.as_ref();
    Ok(ParsedEvent {
        carries_token,
        prompt_tokens: usage.and_then(|u| u.prompt_tokens),
        completion_tokens: usage.and_then(|u| u.completion_tokens),
        end: false,
        error: None,
    })
}

fn error_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => o
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    }
}

/// At most 200 characters of `s`, for messages.
pub(crate) fn clip(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lorax_token_and_final_events() {
        let tok = parse_event(
            Protocol::Lorax,
            r#"{"token":{"id":5,"text":"a","logprob":-0.1,"special":false},"generated_text":null,"details":null}"#,
        )
        .unwrap();
        assert!(tok.carries_token && !tok.end);
        let last = parse_event(
            Protocol::Lorax,
            r#"{"token":{"id":6,"text":"b","logprob":0,"special":false},"generated_text":"ab","details":{"finish_reason":"length","prompt_tokens":7,"generated_tokens":2,"seed":null}}"#,
        )
        .unwrap();
        assert_eq!(
            last,
            ParsedEvent {
                carries_token: true,
                prompt_tokens: Some(7),
                completion_tokens: Some(2),
                end: true,
                error: None
            }
        );
    }

    #[test]
    fn tgi_uses_input_length() {
        let last = parse_event(
            Protocol::Lorax,
            r#"{"index":3,"token":{"id":6,"text":"b","logprob":0,"special":false},"generated_text":"ab","details":{"finish_reason":"length","input_length":9,"generated_tokens":3,"seed":null}}"#,
        )
        .unwrap();
        assert_eq!(last.prompt_tokens, Some(9));
        assert_eq!(last.completion_tokens, Some(3));
    }

    #[test]
    fn error_events_are_errors() {
        let e = parse_event(
            Protocol::Lorax,
            r#"{"error":"out of memory","error_type":"generation"}"#,
        )
        .unwrap();
        assert_eq!(e.error.as_deref(), Some("out of memory"));
        let e = parse_event(
            Protocol::OpenaiChat,
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
        )
        .unwrap();
        assert_eq!(e.error.as_deref(), Some("boom"));
        let e = parse_event(
            Protocol::OpenaiCompletions,
            r#"{"object":"error","message":"bad","code":400}"#,
        )
        .unwrap();
        assert_eq!(e.error.as_deref(), Some("bad"));
    }

    #[test]
    fn openai_role_only_and_usage_chunks_carry_no_token() {
        let role = parse_event(
            Protocol::OpenaiChat,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
        )
        .unwrap();
        assert!(!role.carries_token);
        let empty = parse_event(
            Protocol::OpenaiChat,
            r#"{"choices":[{"index":0,"delta":{"content":""}}]}"#,
        )
        .unwrap();
        assert!(!empty.carries_token);
        let tok = parse_event(
            Protocol::OpenaiChat,
            r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
        )
        .unwrap();
        assert!(tok.carries_token);
        let text = parse_event(
            Protocol::OpenaiCompletions,
            r#"{"choices":[{"index":0,"text":" x"}]}"#,
        )
        .unwrap();
        assert!(text.carries_token);
        let usage = parse_event(
            Protocol::OpenaiCompletions,
            r#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9,"total_tokens":13}}"#,
        )
        .unwrap();
        assert_eq!(
            (usage.carries_token, usage.completion_tokens),
            (false, Some(9))
        );
        assert!(parse_event(Protocol::OpenaiChat, "[DONE]").unwrap().end);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(parse_event(Protocol::Lorax, "{not json").is_err());
        assert!(parse_event(Protocol::Lorax, r#"{"foo":1}"#).is_err());
        assert!(parse_event(Protocol::OpenaiChat, "nope").is_err());
    }

    #[test]
    fn bodies_name_the_adapter_the_way_each_api_expects() {
        let adapter = Adapter::Named("a-3".into());
        let req = GenerationRequest {
            prompt: "hi",
            adapter: &adapter,
            max_tokens: 7,
            ignore_eos: true,
            base_model: None,
        };
        let lorax: serde_json::Value =
            serde_json::from_slice(&request_body(Protocol::Lorax, &req)).unwrap();
        assert_eq!(lorax["parameters"]["adapter_id"], "a-3");
        assert_eq!(lorax["parameters"]["max_new_tokens"], 7);
        assert_eq!(lorax["parameters"]["ignore_eos_token"], true);
        let chat: serde_json::Value =
            serde_json::from_slice(&request_body(Protocol::OpenaiChat, &req)).unwrap();
        assert_eq!(chat["model"], "a-3");
        assert_eq!(chat["messages"][0]["content"], "hi");
        assert_eq!(chat["stream_options"]["include_usage"], true);
        let base = GenerationRequest {
            adapter: &Adapter::Base,
            base_model: Some("mistral"),
            ..req
        };
        let comp: serde_json::Value =
            serde_json::from_slice(&request_body(Protocol::OpenaiCompletions, &base)).unwrap();
        assert_eq!(comp["model"], "mistral");
        assert_eq!(comp["prompt"], "hi");
        let lorax_base: serde_json::Value =
            serde_json::from_slice(&request_body(Protocol::Lorax, &base)).unwrap();
        assert!(lorax_base["parameters"].get("adapter_id").is_none());
    }
}
