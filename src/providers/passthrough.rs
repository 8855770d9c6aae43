//! Forwarding a client's chat body unchanged to an OpenAI-compatible
//! upstream (OpenAI, Azure OpenAI), instead of serialising the parsed request
//! again.
//!
//! Owns [`OriginalBody`], the client's bytes kept with the parsed
//! [`ChatRequest`] (a reference-counted [`Bytes`], no copy), and
//! [`forward_body`], which decides whether those bytes can go upstream as
//! they are. Two edits are made in place, without a parse: the top-level
//! `model` string is replaced when the account's model differs from the one
//! asked for (or Azure's v1 form wants the deployment), and
//! `"stream_options":{"include_usage":true}` is inserted for a stream whose
//! client sent no `stream_options`. Anything else (a stream whose options
//! lack `include_usage`, a plain call made from a streamed request, a body
//! without a plain top-level `model` string) takes the serialising path, as
//! before.
//!
//! The bytes stay valid only while the parsed request says what they say.
//! `stream` and `stream_options` are checked against what was read; `model`
//! is compared with the bytes themselves. Code that changes any other field of
//! a request read from a client must call [`ChatRequest::forget_original`].

use super::wire::ChatRequest;
use bytes::Bytes;
use std::ops::Range;

/// A client's chat body as it was read, with what [`forward_body`] needs to
/// tell whether the parsed request still matches it.
#[derive(Clone, Default)]
pub struct OriginalBody {
    bytes: Option<Bytes>,
    /// `stream` as read.
    stream: Option<bool>,
    /// Whether `stream_options` was present.
    stream_options: bool,
}

impl OriginalBody {
    /// The bytes `req` was parsed from.
    pub fn of(req: &ChatRequest, bytes: Bytes) -> Self {
        OriginalBody { bytes: Some(bytes), stream: req.stream, stream_options: req.stream_options.is_some() }
    }

    pub fn is_kept(&self) -> bool {
        self.bytes.is_some()
    }
}

/// Two requests with the same fields are equal whether or not one kept its
/// client's bytes: they are a cache of the serialisation, not the request.
impl PartialEq for OriginalBody {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for OriginalBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bytes {
            Some(b) => write!(f, "OriginalBody({} bytes)", b.len()),
            None => f.write_str("OriginalBody(none)"),
        }
    }
}

const INCLUDE_USAGE: &[u8] = br#""stream_options":{"include_usage":true},"#;

/// The client's body to send to an OpenAI-compatible upstream for a call that
/// is a stream or not (`stream`), with the model `model` (`None`: the
/// request's own `model`), or `None` when it has to be serialised.
pub(super) fn forward_body(req: &ChatRequest, stream: bool, model: Option<&str>) -> Option<Bytes> {
    let o = &req.original;
    let bytes = o.bytes.as_ref()?;
    if req.stream != o.stream || req.stream_options.is_some() != o.stream_options || req.is_stream() != stream {
        return None;
    }
    let add_usage = stream && req.stream_options.is_none();
    if stream && !add_usage && !req.wants_stream_usage() {
        // Options without `include_usage: true`: merged by the serialising path.
        return None;
    }
    if !stream && req.stream_options.is_some() {
        // A plain call drops `stream_options` (OpenAI refuses them without a stream).
        return None;
    }
    let (open, span) = top_level_model(bytes)?;
    let model = model.unwrap_or(&req.model);
    let same_model = bytes.get(span.start + 1..span.end - 1) == Some(model.as_bytes());
    if same_model && !add_usage {
        return Some(bytes.clone());
    }
    let mut out = Vec::with_capacity(bytes.len() + model.len() + INCLUDE_USAGE.len() + 2);
    out.extend_from_slice(&bytes[..=open]);
    if add_usage {
        out.extend_from_slice(INCLUDE_USAGE);
    }
    out.extend_from_slice(&bytes[open + 1..span.start]);
    if same_model {
        out.extend_from_slice(&bytes[span.clone()]);
    } else {
        serde_json::to_writer(&mut out, model).ok()?;
    }
    out.extend_from_slice(&bytes[span.end..]);
    Some(Bytes::from(out))
}

/// In a JSON object's text: the offset of its `{` and the byte range of its
/// top-level `"model"` member's string value, quotes included. `None` when
/// the text is not an object, or its `model` is not a string or is written
/// with escapes in its key. The text is already known to be valid JSON (it
/// parsed); this only walks it, stopping at `model` (usually the first key).
fn top_level_model(b: &[u8]) -> Option<(usize, Range<usize>)> {
    let open = skip_ws(b, 0);
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let mut i = open + 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_end = value_end(b, i)?;
        if key == b"model" {
            return (b.get(i) == Some(&b'"')).then_some((open, i..value_end));
        }
        i = value_end;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is a string's opening quote: the offset just past its closing one.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The offset just past the JSON value starting at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(b.get(j), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn read(body: &str) -> ChatRequest {
        let mut r: ChatRequest = serde_json::from_str(body).unwrap();
        r.keep_original(Bytes::copy_from_slice(body.as_bytes()));
        r
    }

    fn json(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn an_unchanged_plain_request_is_forwarded_byte_for_byte() {
        let body = r#"{ "model" : "gpt-4o-mini", "messages":[{"role":"user","content":"Hi \"there\" {[\\"}], "temperature":1e0,"seed":7, "x-vendor":{"a":[1,2]}}"#;
        let r = read(body);
        let out = forward_body(&r, false, None).unwrap();
        assert_eq!(out.as_ref(), body.as_bytes());
        assert_eq!(out.as_ptr(), r.original.bytes.as_ref().unwrap().as_ptr(), "shared, not copied");
    }

    #[test]
    fn the_model_is_rewritten_in_place_wherever_it_stands() {
        for body in [
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"model"}]}"#,
            r#"{"messages":[{"role":"user","content":"\"model\":\"x\"","model":"inner"}],"metadata":{"model":"m"},"model":"gpt-4o-mini","n":1}"#,
        ] {
            let mut r = read(body);
            r.model = "gpt-4o-2024-08-06 \"q\"".into();
            let out = json(&forward_body(&r, false, None).unwrap());
            let mut want = json(body.as_bytes());
            want["model"] = Value::String(r.model.clone());
            assert_eq!(out, want);
            let dep = json(&forward_body(&r, false, Some("my-deployment")).unwrap());
            assert_eq!(dep["model"], "my-deployment");
        }
    }

    #[test]
    fn a_stream_gets_include_usage_unless_it_asked_for_it() {
        let r = read(r#"{"model":"gpt-4o","stream":true,"messages":[]}"#);
        let out = json(&forward_body(&r, true, Some("dep")).unwrap());
        assert_eq!(
            (out["stream_options"]["include_usage"].clone(), out["model"].clone(), out["stream"].clone()),
            (true.into(), "dep".into(), true.into())
        );
        let asked = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
        assert_eq!(forward_body(&read(asked), true, None).unwrap().as_ref(), asked.as_bytes());
        // Options without include_usage are merged by serialising.
        assert!(forward_body(&read(r#"{"model":"m","stream":true,"stream_options":{"x":1},"messages":[]}"#), true, None).is_none());
    }

    #[test]
    fn anything_the_bytes_no_longer_say_is_serialised() {
        let r = read(r#"{"model":"gpt-4o","stream":true,"messages":[]}"#);
        assert!(forward_body(&r, false, None).is_none(), "a plain call from a stream");
        let mut copy = r.clone();
        copy.stream = None;
        assert!(forward_body(&copy, false, None).is_none(), "stream changed after reading");
        let plain_with_options = read(r#"{"model":"gpt-4o","stream_options":{"include_usage":true},"messages":[]}"#);
        assert!(forward_body(&plain_with_options, false, None).is_none());
        let mut forgotten = read(r#"{"model":"gpt-4o","messages":[]}"#);
        forgotten.forget_original();
        assert!(forward_body(&forgotten, false, None).is_none());
        assert!(forward_body(&ChatRequest::simple("gpt-4o", "hi"), false, None).is_none(), "never read from a client");
        // A key written with escapes is not looked through.
        assert!(forward_body(&read(r#"{"mod\u0065l":"gpt-4o","messages":[]}"#), false, None).is_none());
    }

    #[test]
    fn the_scanner_finds_only_the_top_level_model_string() {
        assert_eq!(top_level_model(br#"  {"model":"a"}"#), Some((2, 11..14)));
        assert_eq!(top_level_model(br#"{"a":{"model":"x"},"b":["model"],"c":-1.5e3,"d":null,"model":"m"}"#).map(|(_, s)| s), Some(61..64));
        assert_eq!(top_level_model(br#"{"a":1}"#), None);
        assert_eq!(top_level_model(br#"{"model":null}"#), None);
        assert_eq!(top_level_model(br#"[{"model":"a"}]"#), None);
        assert_eq!(top_level_model(br#"{"model":"a"#), None, "cut text is not read past its end");
        assert_eq!(top_level_model(br#"{"a":"\"#), None);
    }
}
