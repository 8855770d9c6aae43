//! Token estimation with a real tokenizer (tiktoken's `o200k_base`): a request
//! before it is sent (quota checks, context windows) and the output of a
//! stream that was cut before its usage arrived. For Claude models this is an
//! approximation.
//!
//! Every count that may run on a gateway's serving thread is bounded: exact
//! up to [`EXACT_MAX_BYTES`] of text, estimated from samples beyond. The
//! exact count of a long prompt ([`count_chat_prompt_until`]) is for the
//! blocking pool, and stops once past the limit it is checked against.

use super::wire::{ChatRequest, EmbeddingsRequest};

/// What OpenAI charges per message for the chat framing, and once for the reply priming.
const TOKENS_PER_MESSAGE: u64 = 3;
const REPLY_PRIMING: u64 = 3;
/// A low-detail image; high-detail images cost more, so this is a floor.
const TOKENS_PER_IMAGE: u64 = 85;

/// Text up to this many bytes (in one piece, or in one request altogether)
/// is counted exactly; beyond it the count is estimated from samples of this
/// many bytes, so that no count costs more than about a millisecond of the
/// serving thread, whatever a client sends (a 20 MB prompt took seconds).
pub const EXACT_MAX_BYTES: usize = 64 * 1024;

/// Loads the tokenizer's tables (about a quarter of a second, once per
/// process), so that the first request after a start does not pay for it.
pub fn warm_up() {
    let _ = count_text("warm up");
}

fn tokenize(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Tokens of a piece of text: exact up to [`EXACT_MAX_BYTES`], else
/// estimated from four samples spread over it (never more than its bytes).
pub fn count_text(text: &str) -> u64 {
    if text.len() <= EXACT_MAX_BYTES {
        return tokenize(text);
    }
    let window = EXACT_MAX_BYTES / 4;
    let (mut tokens, mut bytes) = (0u64, 0u64);
    for i in 0..4 {
        let mut start = (text.len() - window) / 3 * i;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let sample = prefix(&text[start..], window);
        tokens = tokens.saturating_add(tokenize(sample));
        bytes = bytes.saturating_add(sample.len() as u64);
    }
    extrapolate(tokens, bytes, text.len() as u64)
}

/// `tokens` counted in `sampled` bytes, scaled to `total` bytes (rounded up,
/// at most one token per byte).
fn extrapolate(tokens: u64, sampled: u64, total: u64) -> u64 {
    if sampled == 0 {
        return total;
    }
    let scaled = (tokens as u128 * total as u128).div_ceil(sampled as u128);
    scaled.min(total as u128) as u64
}

/// Tokens of several pieces of text that belong together (a request's):
/// exact while they add up to at most [`EXACT_MAX_BYTES`], else the pieces'
/// first [`EXACT_MAX_BYTES`] are counted and the rest is estimated at the
/// same rate.
fn count_pieces(each: impl Fn(&mut dyn FnMut(&str))) -> u64 {
    let mut total = 0u64;
    each(&mut |t| total = total.saturating_add(t.len() as u64));
    let (mut tokens, mut sampled) = (0u64, 0u64);
    each(&mut |t| {
        let left = (EXACT_MAX_BYTES as u64).saturating_sub(sampled) as usize;
        if left > 0 {
            let piece = prefix(t, left);
            tokens = tokens.saturating_add(tokenize(piece));
            sampled = sampled.saturating_add(piece.len() as u64);
        }
    });
    if sampled == total { tokens } else { extrapolate(tokens, sampled, total) }
}

/// Tokens of a message's role: the usual roles are counted once per process.
fn count_role(role: &str) -> u64 {
    const ROLES: [&str; 6] = ["user", "assistant", "system", "developer", "tool", "function"];
    static COUNTS: std::sync::OnceLock<[u64; 6]> = std::sync::OnceLock::new();
    match ROLES.iter().position(|r| *r == role) {
        Some(i) => COUNTS.get_or_init(|| ROLES.map(tokenize))[i],
        // A role is a short word; a huge one is counted as its bytes.
        None => count_text(role),
    }
}

/// The chat framing: priming, per-message overhead and roles, and images.
fn chat_framing(req: &ChatRequest) -> u64 {
    req.messages.iter().fold(REPLY_PRIMING, |n, m| {
        n.saturating_add(TOKENS_PER_MESSAGE)
            .saturating_add(count_role(&m.role))
            .saturating_add(m.image_count().saturating_mul(TOKENS_PER_IMAGE))
    })
}

/// Prompt tokens of a chat request, counted the way OpenAI's cookbook does
/// (exact for prompts of up to [`EXACT_MAX_BYTES`] of text, see [`count_pieces`]).
pub fn estimate_chat_prompt(req: &ChatRequest) -> u64 {
    let text = count_pieces(|f| {
        for m in &req.messages {
            m.for_each_text(&mut *f);
        }
    });
    chat_framing(req).saturating_add(text)
}

/// The tokenizer's count of a chat prompt however long it is, stopping as
/// soon as it exceeds `limit` (the result is then some number above
/// `limit`). Costs up to about `limit` tokens' worth of tokenizing: for the
/// blocking pool, never a serving thread. Long texts are counted in chunks
/// of 256 KiB (a token split by a chunk's end may count twice).
pub fn count_chat_prompt_until(req: &ChatRequest, limit: u64) -> u64 {
    let mut n = chat_framing(req);
    for m in &req.messages {
        m.for_each_text(|t| add_chunks(&mut n, t, limit));
        if n > limit {
            break;
        }
    }
    n
}

/// As [`count_chat_prompt_until`], for one text (an embeddings input).
pub fn count_text_until(text: &str, limit: u64) -> u64 {
    let mut n = 0;
    add_chunks(&mut n, text, limit);
    n
}

fn add_chunks(n: &mut u64, mut text: &str, limit: u64) {
    const CHUNK: usize = 256 * 1024;
    while !text.is_empty() && *n <= limit {
        let mut chunk = prefix(text, CHUNK);
        if chunk.is_empty() {
            // Cannot happen (a character is at most 4 bytes); stay safe anyway.
            chunk = text;
        }
        *n = n.saturating_add(tokenize(chunk));
        text = &text[chunk.len()..];
    }
}

/// At least [`estimate_chat_prompt`], without running the tokenizer: every
/// token stands for at least one byte of text, so a text's length in bytes
/// bounds its token count. The quota check uses this while a supplier is far
/// from its quota, and the exact count only near it.
pub fn chat_prompt_bound(req: &ChatRequest) -> u64 {
    let mut n = chat_framing(req);
    for m in &req.messages {
        m.for_each_text(|t| n = n.saturating_add(t.len() as u64));
    }
    n
}

/// The most a chat request can use: its prompt plus its output cap (if set).
pub fn estimate_chat_max_total(req: &ChatRequest) -> u64 {
    estimate_chat_prompt(req).saturating_add(req.max_output().unwrap_or(0))
}

/// Tokens of pre-tokenised input (arrays of integers).
fn pre_tokenised(req: &EmbeddingsRequest) -> u64 {
    match req.input.as_array() {
        Some(items) => items.iter().filter_map(|i| i.as_array()).fold(0u64, |n, a| n.saturating_add(a.len() as u64)),
        None => 0,
    }
}

/// Prompt tokens of an embeddings request (exact up to [`EXACT_MAX_BYTES`] of text).
pub fn estimate_embeddings(req: &EmbeddingsRequest) -> u64 {
    count_pieces(|f| req.for_each_text(&mut *f)).saturating_add(pre_tokenised(req))
}

/// At least [`estimate_embeddings`], without running the tokenizer (see [`chat_prompt_bound`]).
pub fn embeddings_bound(req: &EmbeddingsRequest) -> u64 {
    let mut n = 0u64;
    req.for_each_text(|t| n = n.saturating_add(t.len() as u64));
    n.saturating_add(pre_tokenised(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plausible() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("hello world"), 2);
        let r = ChatRequest::simple("gpt-4o", "hello world");
        // 3 priming + 3 framing + 1 ("user") + 2.
        assert_eq!(estimate_chat_prompt(&r), 9);
        for role in ["user", "assistant", "system", "developer", "tool", "function", "narrator"] {
            assert_eq!(count_role(role), count_text(role), "{role}");
        }
    }

    #[test]
    fn bounds_are_never_below_the_counts() {
        let texts = [
            "",
            "hello world",
            "Félicitations aux mariés ! 🎉💍 Le dîner commence à 19h.",
            "婚礼摄影师的报价单",
            "   \n\n\t  ",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "x",
        ];
        for t in texts {
            let r = ChatRequest::simple("gpt-4o", t);
            let (exact, bound) = (estimate_chat_prompt(&r), chat_prompt_bound(&r));
            assert!(bound >= exact, "{t:?}: bound {bound} < exact {exact}");
            let e: EmbeddingsRequest =
                serde_json::from_value(serde_json::json!({"model": "text-embedding-3-small", "input": [t, t, [1, 2, 3]]})).unwrap();
            assert!(embeddings_bound(&e) >= estimate_embeddings(&e), "{t:?}");
        }
        // For English the bound is a few times the count, not orders of magnitude.
        let r = ChatRequest::simple("gpt-4o", &"The ceremony starts at four; photos by the lake after. ".repeat(20));
        assert!(chat_prompt_bound(&r) < 8 * estimate_chat_prompt(&r));
    }

    #[test]
    fn long_texts_are_estimated_from_samples_and_stay_close() {
        let text = "The ceremony starts at four; photos by the lake after. Dinner at seven, speeches at nine. ".repeat(20_000);
        assert!(text.len() > 20 * EXACT_MAX_BYTES);
        let exact = count_text_until(&text, u64::MAX);
        let t0 = std::time::Instant::now();
        let estimate = count_text(&text);
        let took = t0.elapsed();
        let off = (estimate as f64 - exact as f64).abs() / exact as f64;
        assert!(off < 0.02, "estimate {estimate} vs exact {exact}");
        assert!(estimate <= text.len() as u64);
        // Odd Unicode: samples never split a character.
        let odd = "é🎉婚".repeat(100_000);
        assert!(count_text(&odd) > 0 && count_text(&odd) <= odd.len() as u64);
        // A request of many pieces is sampled as a whole.
        let mut r = ChatRequest::simple("gpt-4o", "");
        r.messages = (0..200).map(|_| crate::providers::wire::ChatMessage::text("user", &text[..50_000])).collect();
        let e = estimate_chat_prompt(&r);
        let x = count_chat_prompt_until(&r, u64::MAX);
        assert!((e as f64 - x as f64).abs() / (x as f64) < 0.02, "{e} vs {x}");
        assert!(e <= chat_prompt_bound(&r));
        // The exact count stops soon after its limit.
        assert!(count_chat_prompt_until(&r, 1000) > 1000);
        assert!(count_chat_prompt_until(&r, 1000) < x / 10);
        eprintln!("estimate of {} bytes took {took:?}", text.len());
    }
}
