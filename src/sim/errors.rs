//! The simulator's error answers, each in its provider's exact shape:
//! unauthorized keys, the injected faults (rate limits, overload, outages,
//! spend limits), bad requests, context-length and content-filter refusals,
//! unknown models.

use super::reply::Dialect;

/// An error answer in the dialect's exact shape.
pub struct ErrorAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

fn oa_error(status: u16, message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> ErrorAnswer {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    ErrorAnswer { status, body: serde_json::to_vec(&body).unwrap_or_default(), headers: Vec::new() }
}

fn az_error(status: u16, code: &str, message: &str) -> ErrorAnswer {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    ErrorAnswer { status, body: serde_json::to_vec(&body).unwrap_or_default(), headers: Vec::new() }
}

fn an_error(status: u16, kind: &str, message: &str, req: u64) -> ErrorAnswer {
    let body =
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": format!("req_sim{req:016x}")});
    ErrorAnswer { status, body: serde_json::to_vec(&body).unwrap_or_default(), headers: Vec::new() }
}

/// How OpenAI shows a wrong key: a few leading characters, stars, the last four.
fn openai_masked(key: &str) -> String {
    if key.len() < 8 || !key.is_ascii() {
        return "*".repeat(key.len().min(8));
    }
    format!("{}{}{}", &key[..3], "*".repeat(key.len() - 7), &key[key.len() - 4..])
}

pub fn unauthorized(d: Dialect, presented: Option<&str>, req: u64) -> ErrorAnswer {
    match d {
        Dialect::OpenAi => match presented {
            Some(k) if !k.is_empty() => oa_error(
                401,
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    openai_masked(k)
                ),
                "invalid_request_error",
                Some("invalid_api_key"),
                None,
            ),
            _ => oa_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                None,
                None,
            ),
        },
        Dialect::Azure => az_error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        ),
        Dialect::Anthropic => match presented {
            Some(_) => an_error(401, "authentication_error", "invalid x-api-key", req),
            None => an_error(401, "authentication_error", "x-api-key header is required", req),
        },
    }
}

pub fn fault(d: Dialect, outcome: super::Outcome, model: &str, req: u64) -> ErrorAnswer {
    use super::Outcome;
    match outcome {
        Outcome::Ok => bad_request(d, "internal: no fault", req),
        Outcome::Outage => {
            let mut e = ErrorAnswer {
                status: 503,
                body: b"upstream connect error or disconnect/reset before headers. reset reason: connection failure".to_vec(),
                headers: Vec::new(),
            };
            e.headers.push(("content-type", "text/plain".into()));
            e
        }
        Outcome::SpendLimit => match d {
            Dialect::OpenAi => oa_error(
                429,
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                Some("insufficient_quota"),
                None,
            ),
            Dialect::Azure => {
                az_error(429, "insufficient_quota", "You exceeded your current quota, please check your plan and billing details.")
            }
            Dialect::Anthropic => an_error(
                400,
                "invalid_request_error",
                "You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
                req,
            ),
        },
        Outcome::RateLimited { retry_after_ms } => {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            let mut e = match d {
                Dialect::OpenAi => oa_error(
                    429,
                    &format!(
                        "Rate limit reached for {model} in organization org-sim on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in {secs}s. Visit https://platform.openai.com/account/rate-limits to learn more."
                    ),
                    "requests",
                    Some("rate_limit_exceeded"),
                    None,
                ),
                Dialect::Azure => az_error(
                    429,
                    "429",
                    &format!(
                        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after {secs} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
                    ),
                ),
                Dialect::Anthropic => an_error(
                    429,
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
                    req,
                ),
            };
            e.headers.push(("retry-after", secs.to_string()));
            match d {
                Dialect::OpenAi | Dialect::Azure => {
                    e.headers.push(("retry-after-ms", retry_after_ms.to_string()));
                    e.headers.push(("x-ratelimit-remaining-requests", "0".into()));
                    e.headers.push(("x-ratelimit-reset-requests", format!("{}ms", retry_after_ms)));
                }
                Dialect::Anthropic => {
                    let reset =
                        crate::domain::Clock::now(&crate::domain::SystemClock) + chrono::Duration::milliseconds(retry_after_ms as i64);
                    e.headers.push(("anthropic-ratelimit-requests-remaining", "0".into()));
                    e.headers.push(("anthropic-ratelimit-requests-reset", reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                }
            }
            e
        }
        Outcome::Overloaded => match d {
            Dialect::Anthropic => an_error(529, "overloaded_error", "Overloaded", req),
            Dialect::OpenAi => oa_error(503, "The engine is currently overloaded, please try again later.", "server_error", None, None),
            Dialect::Azure => {
                az_error(503, "ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later.")
            }
        },
        Outcome::ServerError => match d {
            Dialect::Anthropic => an_error(500, "api_error", "Internal server error", req),
            Dialect::OpenAi => {
                oa_error(500, "The server had an error while processing your request. Sorry about that!", "server_error", None, None)
            }
            Dialect::Azure => {
                az_error(500, "InternalServerError", "The server had an error while processing your request. Sorry about that!")
            }
        },
    }
}

pub fn bad_request(d: Dialect, message: &str, req: u64) -> ErrorAnswer {
    match d {
        Dialect::OpenAi => oa_error(400, message, "invalid_request_error", None, None),
        Dialect::Azure => az_error(400, "BadRequest", message),
        Dialect::Anthropic => an_error(400, "invalid_request_error", message, req),
    }
}

pub fn context_length(d: Dialect, tokens: u64, max: u64, req: u64) -> ErrorAnswer {
    match d {
        Dialect::OpenAi | Dialect::Azure => {
            let msg = format!(
                "This model's maximum context length is {max} tokens. However, your messages resulted in {tokens} tokens. Please reduce the length of the messages."
            );
            let mut e = oa_error(400, &msg, "invalid_request_error", Some("context_length_exceeded"), Some("messages"));
            if d == Dialect::Azure {
                e = az_error(400, "context_length_exceeded", &msg);
            }
            e
        }
        Dialect::Anthropic => an_error(400, "invalid_request_error", &format!("prompt is too long: {tokens} tokens > {max} maximum"), req),
    }
}

pub fn azure_content_filter() -> ErrorAnswer {
    let body = serde_json::json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}});
    ErrorAnswer { status: 400, body: serde_json::to_vec(&body).unwrap_or_default(), headers: Vec::new() }
}

pub fn not_found_model(d: Dialect, model: &str, req: u64) -> ErrorAnswer {
    match d {
        Dialect::OpenAi => oa_error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
            None,
        ),
        Dialect::Azure => az_error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        ),
        Dialect::Anthropic => an_error(404, "not_found_error", &format!("model: {model}"), req),
    }
}
