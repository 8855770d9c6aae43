//! Times given for a scheduled start: parsing an RFC 3339 time with its
//! offset (what `switchboard migrate start --at` and the console's schedule
//! form accept) and showing an instant in a supplier's own time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Parses an RFC 3339 time with its offset (`2026-06-02T09:00:00+02:00`, or
/// `Z` for UTC). A time without an offset is refused: it would be ambiguous.
pub fn parse_start_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| format!("'{t}' is not an RFC 3339 time with its offset; write e.g. 2026-06-02T09:00:00+02:00 (or …Z for UTC)"))
}

/// `instant` as the supplier sees it: `Tue 02 Jun 2026 09:00 CEST (Europe/Berlin)`.
pub fn format_local(instant: DateTime<Utc>, tz: Tz) -> String {
    let local = instant.with_timezone(&tz);
    if tz == Tz::UTC {
        return format!("{} UTC", local.format("%a %d %b %Y %H:%M"));
    }
    format!("{} ({})", local.format("%a %d %b %Y %H:%M %Z"), tz.name())
}

/// The same instant written as RFC 3339 in the supplier's offset, for copying
/// into `--at`: `2026-06-02T09:00:00+02:00`.
pub fn rfc3339_local(instant: DateTime<Utc>, tz: Tz) -> String {
    instant.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_required_and_kept() {
        let t = parse_start_time("2026-06-02T09:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-06-02T07:00:00+00:00");
        assert_eq!(parse_start_time(" 2026-06-02T07:00:00Z ").unwrap(), t);
        let e = parse_start_time("2026-06-02 09:00").unwrap_err();
        assert!(e.contains("offset"), "{e}");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(format_local(t, berlin), "Tue 02 Jun 2026 09:00 CEST (Europe/Berlin)");
        assert_eq!(format_local(t, Tz::UTC), "Tue 02 Jun 2026 07:00 UTC");
        assert_eq!(rfc3339_local(t, berlin), "2026-06-02T09:00:00+02:00");
        assert_eq!(parse_start_time(&rfc3339_local(t, berlin)).unwrap(), t);
    }
}
