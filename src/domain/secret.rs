//! The one secret type: provider API keys and gateway tokens. Debug and
//! Display show only the masked fingerprint (`sk-…a1b2`), nothing serialises
//! it, and the value is overwritten in memory when the last copy is dropped.
//!
//! A [`Secret`] is a shared, immutable snapshot (`Arc` inside): cloning it for
//! a request copies a pointer, not the key, so rotating an account's key
//! never changes the key of a request under way and never leaves stray copies
//! of the value behind. The value is reachable only through
//! [`Secret::expose`], to be sent to the provider it belongs to (or hashed,
//! for a gateway token).

use std::sync::Arc;

/// A secret (provider API key or gateway token); see the module docs.
#[derive(Clone)]
pub struct Secret(Arc<Zeroized>);

/// The owned value, zeroized on drop (once, when the last [`Secret`] sharing
/// it goes away).
struct Zeroized(String);

impl Drop for Zeroized {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Secret {
    /// Wraps a secret, trimming surrounding whitespace (a pasted key often
    /// carries a newline). The untrimmed input is zeroized.
    pub fn new(value: impl Into<String>) -> Self {
        let mut raw: String = value.into();
        let trimmed = raw.trim();
        let value = if trimmed.len() == raw.len() {
            std::mem::take(&mut raw)
        } else {
            let t = trimmed.to_string();
            zeroize::Zeroize::zeroize(&mut raw);
            t
        };
        Self(Arc::new(Zeroized(value)))
    }

    /// The secret itself. Never log, print or store the result.
    pub fn expose(&self) -> &str {
        &self.0.0
    }

    /// The masked fingerprint, e.g. `sk-…a1b2`.
    pub fn fingerprint(&self) -> String {
        super::provider::fingerprint(&self.0.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.0 == other.0.0
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-VERYSECRETVALUE1234567890abcd";

    #[test]
    fn trims_and_exposes_only_on_request() {
        let s = Secret::new(format!("  {KEY}\n"));
        assert_eq!(s.expose(), KEY);
        assert_eq!(s.fingerprint(), "sk-proj-…abcd");
        assert!(!s.is_empty());
        assert!(Secret::new(" \n").is_empty());
    }

    #[test]
    fn debug_and_display_never_contain_the_key() {
        let s = Secret::new(format!("  {KEY}\n"));
        assert_eq!(format!("{s:?}"), "Secret(sk-proj-…abcd)");
        assert_eq!(format!("{s}"), "sk-proj-…abcd");
        for shown in [format!("{s:?}"), format!("{s}"), format!("{s:#?}"), format!("{:?}", Some(s.clone()))] {
            assert!(!shown.contains("VERYSECRET"), "{shown}");
            assert!(!shown.contains("1234567890"), "{shown}");
            assert!(shown.contains("sk-proj-…abcd"), "{shown}");
        }
    }

    #[test]
    fn clones_share_one_value_and_compare_by_value() {
        let a = Secret::new(KEY);
        let b = a.clone();
        assert!(std::ptr::eq(a.expose().as_ptr(), b.expose().as_ptr()), "a clone must not copy the key");
        assert_eq!(a, b);
        assert_eq!(a, Secret::new(KEY));
        assert_ne!(a, Secret::new("sk-other-000000000000000000"));
    }

    #[test]
    fn the_value_is_zeroized_when_dropped() {
        // Zeroize the value in place (as Drop does) and look at the very
        // buffer: every byte is 0 and the length is 0 afterwards.
        let mut z = Zeroized(KEY.to_string());
        let (ptr, cap) = (z.0.as_ptr(), z.0.capacity());
        zeroize::Zeroize::zeroize(&mut z.0);
        assert!(z.0.is_empty());
        // SAFETY: `zeroize` clears the String without freeing its buffer, so
        // `ptr` still points to `cap` initialised bytes owned by `z.0`.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, cap) };
        assert!(bytes.iter().all(|b| *b == 0));
        drop(z);
    }
}
