//! The rate limits a provider reports on every answer, parsed from its
//! headers: OpenAI's and Azure's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
//! (resets as Go durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`) and Anthropic's
//! `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
//! (resets as RFC 3339 instants), plus `retry-after` / `retry-after-ms`.
//! Pure: the caller passes a header look-up (or the headers, to
//! [`RateLimitHeaders`]) and the time the answer arrived.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The longest reset or retry-after believed; anything above is capped (an hour).
pub const MAX_RESET: Duration = Duration::from_secs(3600);

/// One limit's window as the provider reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitWindow {
    /// The limit per window (`None`: the provider sent only what remains).
    pub limit: Option<u64>,
    pub remaining: u64,
    /// When the window is back to its full limit.
    pub reset_at: DateTime<Utc>,
}

impl LimitWindow {
    /// What remains at `now`: the full limit once the reset has passed.
    pub fn remaining_at(&self, now: DateTime<Utc>) -> Option<u64> {
        if now >= self.reset_at { self.limit } else { Some(self.remaining) }
    }
}

/// The limits one answer reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportedLimits {
    pub requests: Option<LimitWindow>,
    /// Total tokens (OpenAI, Azure, Anthropic's combined figure).
    pub tokens: Option<LimitWindow>,
    /// Anthropic's separate input and output token limits.
    pub input_tokens: Option<LimitWindow>,
    pub output_tokens: Option<LimitWindow>,
    /// The answer's `retry-after` (a 429's), as a duration.
    pub retry_after: Option<Duration>,
}

impl ReportedLimits {
    pub fn is_empty(&self) -> bool {
        *self == ReportedLimits::default()
    }

    /// Every window reported, with a name.
    pub fn windows(&self) -> impl Iterator<Item = (&'static str, LimitWindow)> {
        [("requests", self.requests), ("tokens", self.tokens), ("input-tokens", self.input_tokens), ("output-tokens", self.output_tokens)]
            .into_iter()
            .filter_map(|(n, w)| Some((n, w?)))
    }

    /// When a key that got a 429 with these headers may be called again:
    /// `retry-after` if given, else the latest reset of an exhausted window,
    /// else the earliest reset of any window; `None` when nothing says.
    pub fn cool_down_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(d) = self.retry_after {
            return Some(now + chrono::Duration::from_std(d.min(MAX_RESET)).unwrap_or_default());
        }
        let exhausted = self.windows().filter(|(_, w)| w.remaining == 0).map(|(_, w)| w.reset_at).max();
        exhausted.or_else(|| self.windows().map(|(_, w)| w.reset_at).min()).filter(|t| *t > now)
    }
}

/// Parses a Go duration as OpenAI sends it: `6m0s`, `20ms`, `1.5s`, `1h2m3s`,
/// `0s`, `250us`. `None` for anything else.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    if !total.is_finite() || total < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(total.min(MAX_RESET.as_secs_f64())))
}

fn plus(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d.min(MAX_RESET)).unwrap_or_default()
}

/// Parses the rate-limit headers of one answer received at `now`. `get`
/// looks a header up by its lower-case name. Malformed values are ignored
/// (a provider's header never fails a request).
pub fn parse_rate_limit_headers<'a>(get: impl Fn(&str) -> Option<&'a str>, now: DateTime<Utc>) -> ReportedLimits {
    let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
    // Each window's header names (remaining, reset, limit), spelled out: this
    // runs on every answer, and formatting them cost six allocations.
    let openai = |[remaining, reset, limit]: [&str; 3]| -> Option<LimitWindow> {
        let remaining = num(remaining)?;
        let reset = get(reset).and_then(parse_go_duration).unwrap_or(Duration::ZERO);
        Some(LimitWindow { limit: num(limit), remaining, reset_at: plus(now, reset) })
    };
    let anthropic = |[remaining, reset, limit]: [&str; 3]| -> Option<LimitWindow> {
        let remaining = num(remaining)?;
        let reset_at = get(reset)
            .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
            .map(|t| t.with_timezone(&Utc).clamp(now, plus(now, MAX_RESET)))
            .unwrap_or(now);
        Some(LimitWindow { limit: num(limit), remaining, reset_at })
    };
    let retry_after = get("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|ms| Duration::from_secs_f64((ms / 1000.0).min(MAX_RESET.as_secs_f64())))
        .or_else(|| {
            let v = get("retry-after")?.trim();
            match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s.min(MAX_RESET.as_secs_f64()))),
                Ok(_) => None,
                Err(_) => {
                    let t = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
                    Some((t - now).to_std().unwrap_or(Duration::ZERO).min(MAX_RESET))
                }
            }
        });
    ReportedLimits {
        requests: openai(["x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-requests"]).or_else(|| {
            anthropic([
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
                "anthropic-ratelimit-requests-limit",
            ])
        }),
        tokens: openai(["x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "x-ratelimit-limit-tokens"]).or_else(|| {
            anthropic(["anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-limit"])
        }),
        input_tokens: anthropic([
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
            "anthropic-ratelimit-input-tokens-limit",
        ]),
        output_tokens: anthropic([
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
            "anthropic-ratelimit-output-tokens-limit",
        ]),
        retry_after,
    }
}

/// Every header name [`parse_rate_limit_headers`] reads.
const NAMES: [&str; 20] = [
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-limit-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-input-tokens-limit",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "anthropic-ratelimit-output-tokens-limit",
    "retry-after-ms",
    "retry-after",
];

/// The rate-limit headers of one answer, picked out in one pass over its
/// headers (lower-case names, in order, repeats included, as an HTTP header
/// map yields them): the first value of each name [`parse_rate_limit_headers`]
/// reads, `None` where that value is not text. Looking each of its names up
/// in the map cost a parse and a hash of the name per look-up, eight or more
/// per answer; a pass compares a prefix per header, and an answer without
/// such headers costs nothing more.
#[derive(Debug, Default)]
pub struct RateLimitHeaders<'a> {
    /// Per name of [`NAMES`]: not seen; seen with a value that is not text; seen.
    found: [Option<Option<&'a str>>; NAMES.len()],
}

impl<'a> RateLimitHeaders<'a> {
    pub fn collect(headers: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        let mut out = RateLimitHeaders::default();
        for (name, value) in headers {
            if !(name.starts_with("x-ratelimit-") || name.starts_with("anthropic-ratelimit-") || name.starts_with("retry-after")) {
                continue;
            }
            if let Some(i) = NAMES.iter().position(|n| *n == name)
                && out.found[i].is_none()
            {
                out.found[i] = Some(value);
            }
        }
        out
    }

    /// Whether the answer had none of the headers.
    pub fn is_empty(&self) -> bool {
        self.found.iter().all(Option::is_none)
    }

    /// The header's first value, if it is text.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        NAMES.iter().position(|n| *n == name).and_then(|i| self.found[i].flatten())
    }

    /// [`parse_rate_limit_headers`] over these headers, for an answer received at `now`.
    pub fn parse(&self, now: DateTime<Utc>) -> ReportedLimits {
        parse_rate_limit_headers(|n| self.get(n), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 13, 12, 0, 0).unwrap()
    }

    fn parse(h: &[(&str, &str)]) -> ReportedLimits {
        parse_rate_limit_headers(|n| h.iter().find(|(k, _)| *k == n).map(|(_, v)| *v), at())
    }

    /// One pass over the headers reads what a look-up per name read: the
    /// first value of a repeated name (even when it is not text), names of
    /// other headers and near misses ignored, every known name alone; and
    /// the pass keeps exactly the names the parser asks for.
    #[test]
    fn the_headers_picked_in_one_pass_are_read_as_looked_up_one_by_one() {
        let real_openai = [
            ("content-type", "application/json"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-limit-tokens", "200000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-remaining-tokens", "199970"),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-reset-tokens", "9ms"),
            ("openai-processing-ms", "400"),
        ];
        let real_anthropic = [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2026-06-13T12:00:05Z"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            ("anthropic-ratelimit-output-tokens-remaining", "7999"),
            ("anthropic-ratelimit-output-tokens-reset", "2026-06-13T12:00:01Z"),
            ("anthropic-ratelimit-tokens-remaining", "46999"),
            ("retry-after", "3"),
        ];
        let mut cases: Vec<Vec<(&str, Option<&str>)>> = vec![
            vec![],
            vec![("content-type", Some("application/json")), ("x-ratelimit-remaining", Some("5")), ("retry-afterwards", Some("1"))],
            real_openai.iter().map(|(k, v)| (*k, Some(*v))).collect(),
            real_anthropic.iter().map(|(k, v)| (*k, Some(*v))).collect(),
            // A repeated name: its first value counts, also when that one is not text.
            vec![("x-ratelimit-remaining-requests", Some("7")), ("x-ratelimit-remaining-requests", Some("8"))],
            vec![("x-ratelimit-remaining-requests", None), ("x-ratelimit-remaining-requests", Some("8"))],
            vec![("retry-after-ms", Some("250")), ("retry-after", Some("9"))],
            vec![("retry-after", Some("Sat, 13 Jun 2026 12:00:30 GMT"))],
        ];
        for n in NAMES {
            cases.push(vec![(n, Some("12")), ("x-ratelimit-remaining-requests", Some("3"))]);
        }
        // The names the parser asks for are the names the pass keeps: asked
        // with nothing there, with only OpenAI's headers there (so it reads
        // their resets and limits), and with only Anthropic's.
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        for has in [|_: &str| false, |n: &str| n.starts_with("x-ratelimit-"), |n: &str| n.starts_with("anthropic-")] {
            parse_rate_limit_headers(
                |n| {
                    asked.borrow_mut().insert(n.to_string());
                    has(n).then_some("1")
                },
                at(),
            );
        }
        assert_eq!(asked.into_inner(), NAMES.iter().map(|n| n.to_string()).collect(), "the parser's names and NAMES");
        for case in cases {
            let looked_up = parse_rate_limit_headers(|n| case.iter().find(|(k, _)| *k == n).and_then(|(_, v)| *v), at());
            let picked = RateLimitHeaders::collect(case.iter().copied());
            assert_eq!(picked.parse(at()), looked_up, "{case:?}");
            assert_eq!(picked.is_empty(), case.iter().all(|(k, _)| !NAMES.contains(k)), "{case:?}");
        }
    }

    #[test]
    fn go_durations_as_openai_sends_them() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("2m3s"), Some(Duration::from_secs(123)));
        assert_eq!(parse_go_duration("0h0m3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_go_duration("17.654s").map(|d| d.as_millis()), Some(17_654));
        assert_eq!(parse_go_duration("99h"), Some(MAX_RESET));
        for bad in ["", "s", "5", "5x", "-1s", "1..2s", "m5"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn openai_headers_of_a_real_answer() {
        // As api.openai.com sends them on a chat completion.
        let r = parse(&[
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-limit-tokens", "30000000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-remaining-tokens", "29999990"),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-reset-tokens", "0s"),
        ]);
        let req = r.requests.unwrap();
        assert_eq!((req.limit, req.remaining), (Some(10_000), 9_999));
        assert_eq!(req.reset_at, at() + chrono::Duration::milliseconds(6));
        let tok = r.tokens.unwrap();
        assert_eq!((tok.limit, tok.remaining, tok.reset_at), (Some(30_000_000), 29_999_990, at()));
        assert_eq!(r.retry_after, None);
        assert!(r.input_tokens.is_none() && !r.is_empty());
        // Past its reset, a window is full again.
        assert_eq!(req.remaining_at(at() + chrono::Duration::seconds(1)), Some(10_000));
        assert_eq!(req.remaining_at(at()), Some(9_999));
    }

    #[test]
    fn an_openai_429_cools_down_for_its_reset() {
        let r = parse(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149000"),
            ("x-ratelimit-reset-tokens", "400ms"),
        ]);
        // The exhausted window decides, not the sooner token reset.
        assert_eq!(r.cool_down_until(at()), Some(at() + chrono::Duration::seconds(360)));
        // retry-after wins over the windows.
        let r = parse(&[("retry-after", "2"), ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "6m0s")]);
        assert_eq!(r.cool_down_until(at()), Some(at() + chrono::Duration::seconds(2)));
        let r = parse(&[("retry-after-ms", "250"), ("retry-after", "9")]);
        assert_eq!(r.retry_after, Some(Duration::from_millis(250)));
        assert_eq!(parse(&[]).cool_down_until(at()), None);
    }

    #[test]
    fn anthropic_headers_of_a_real_answer() {
        let r = parse(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-06-13T12:00:30Z"),
            ("anthropic-ratelimit-tokens-limit", "100000"),
            ("anthropic-ratelimit-tokens-remaining", "90000"),
            ("anthropic-ratelimit-tokens-reset", "2026-06-13T12:00:05Z"),
            ("anthropic-ratelimit-input-tokens-limit", "80000"),
            ("anthropic-ratelimit-input-tokens-remaining", "75000"),
            ("anthropic-ratelimit-input-tokens-reset", "2026-06-13T12:00:04Z"),
            ("anthropic-ratelimit-output-tokens-limit", "16000"),
            ("anthropic-ratelimit-output-tokens-remaining", "15000"),
            ("anthropic-ratelimit-output-tokens-reset", "2026-06-13T12:00:06+00:00"),
            ("retry-after", "30"),
        ]);
        let req = r.requests.unwrap();
        assert_eq!((req.limit, req.remaining, req.reset_at), (Some(50), 0, at() + chrono::Duration::seconds(30)));
        assert_eq!(r.tokens.unwrap().remaining, 90_000);
        assert_eq!(r.input_tokens.unwrap().limit, Some(80_000));
        assert_eq!(r.output_tokens.unwrap().reset_at, at() + chrono::Duration::seconds(6));
        assert_eq!(r.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(r.windows().count(), 4);
        // A reset in the past (clock skew) counts as now.
        let r = parse(&[("anthropic-ratelimit-requests-remaining", "3"), ("anthropic-ratelimit-requests-reset", "2020-01-01T00:00:00Z")]);
        assert_eq!(r.requests.unwrap().reset_at, at());
    }

    #[test]
    fn garbage_is_ignored() {
        let r = parse(&[
            ("x-ratelimit-remaining-requests", "lots"),
            ("x-ratelimit-remaining-tokens", "-5"),
            ("anthropic-ratelimit-requests-remaining", "7"),
            ("anthropic-ratelimit-requests-reset", "tomorrow"),
            ("retry-after", "NaN"),
        ]);
        assert!(r.tokens.is_none() && r.retry_after.is_none());
        assert_eq!(r.requests.map(|w| (w.remaining, w.limit, w.reset_at)), Some((7, None, at())));
        assert_eq!(parse(&[("retry-after", "Sat, 13 Jun 2026 12:00:10 GMT")]).retry_after, Some(Duration::from_secs(10)));
    }
}
