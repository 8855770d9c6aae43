//! Token estimation with a real tokenizer (tiktoken's `o200k_base`): a request
//! before it is sent (quota checks) and the output of a stream that was cut
//! before its usage arrived. For Claude models this is an approximation.

use super::wire::{ChatRequest, EmbeddingsRequest};

/// What OpenAI charges per message for the chat framing, and once for the reply priming.
const TOKENS_PER_MESSAGE: u64 = 3;
const REPLY_PRIMING: u64 = 3;
/// A low-detail image; high-detail images cost more, so this is a floor.
const TOKENS_PER_IMAGE: u64 = 85;

/// Loads the tokenizer's tables (about a quarter of a second, once per
/// process), so that the first request after a start does not pay for it.
pub fn warm_up() {
    let _ = count_text("warm up");
}

/// Tokens of a piece of text.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
}

/// Tokens of a message's role: the usual roles are counted once per process.
fn count_role(role: &str) -> u64 {
    const ROLES: [&str; 6] = ["user", "assistant", "system", "developer", "tool", "function"];
    static COUNTS: std::sync::OnceLock<[u64; 6]> = std::sync::OnceLock::new();
    match ROLES.iter().position(|r| *r == role) {
        Some(i) => COUNTS.get_or_init(|| ROLES.map(count_text))[i],
        None => count_text(role),
    }
}

/// Prompt tokens of a chat request, counted the way OpenAI's cookbook does.
pub fn estimate_chat_prompt(req: &ChatRequest) -> u64 {
    let mut n = REPLY_PRIMING;
    for m in &req.messages {
        n += TOKENS_PER_MESSAGE + count_role(&m.role);
        m.for_each_text(|t| n += count_text(t));
        n += m.image_count() * TOKENS_PER_IMAGE;
    }
    n
}

/// At least [`estimate_chat_prompt`], without running the tokenizer: every
/// token stands for at least one byte of text, so a text's length in bytes
/// bounds its token count. The quota check uses this while a supplier is far
/// from its quota, and the exact count only near it.
pub fn chat_prompt_bound(req: &ChatRequest) -> u64 {
    let mut n = REPLY_PRIMING;
    for m in &req.messages {
        n += TOKENS_PER_MESSAGE + count_role(&m.role);
        m.for_each_text(|t| n += t.len() as u64);
        n += m.image_count() * TOKENS_PER_IMAGE;
    }
    n
}

/// The most a chat request can use: its prompt plus its output cap (if set).
pub fn estimate_chat_max_total(req: &ChatRequest) -> u64 {
    estimate_chat_prompt(req) + req.max_output().unwrap_or(0)
}

/// Prompt tokens of an embeddings request.
pub fn estimate_embeddings(req: &EmbeddingsRequest) -> u64 {
    let mut n = 0;
    req.for_each_text(|t| n += count_text(t));
    if let Some(items) = req.input.as_array() {
        // Pre-tokenised input: arrays of integers.
        n += items.iter().filter_map(|i| i.as_array()).map(|a| a.len() as u64).sum::<u64>();
    }
    n
}

/// At least [`estimate_embeddings`], without running the tokenizer (see [`chat_prompt_bound`]).
pub fn embeddings_bound(req: &EmbeddingsRequest) -> u64 {
    let mut n = 0;
    req.for_each_text(|t| n += t.len() as u64);
    if let Some(items) = req.input.as_array() {
        n += items.iter().filter_map(|i| i.as_array()).map(|a| a.len() as u64).sum::<u64>();
    }
    n
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
}
