//! Calendar arithmetic, in one place: month boundaries (quotas reset at the
//! first instant of a month, UTC), whole months forward and back, days of a
//! month, the first and next instants of a day, the `YYYY-MM` month key and
//! the weekend rule. Everything is UTC and total: no input panics, an
//! out-of-range date falls back to the value passed in.
//!
//! The one exception is a supplier's *local* day ([`local_day_start`],
//! [`local_day_range`]): wedding days are the supplier's own calendar days in
//! its time zone (quota months and rollups stay UTC).
//!
//! Whether a month is in the wedding season is [`super::SeasonConfig`]'s
//! (`is_peak`, `is_peak_month`), since the peak months are configurable.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};

/// The first instant of the calendar month (UTC) containing `t`.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().unwrap_or(t)
}

/// The first instant of the next calendar month (UTC) after `t`: when quotas reset.
pub fn next_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t)
}

/// The first day of `d`'s month.
pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The first day of the month `n` months after `d`'s month (`n` may be negative).
pub fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    let idx = d.year().saturating_mul(12).saturating_add(d.month0() as i32).saturating_add(n);
    NaiveDate::from_ymd_opt(idx.div_euclid(12), idx.rem_euclid(12) as u32 + 1, 1).unwrap_or(d)
}

/// The first day of the month after `d`'s month.
pub fn next_month(d: NaiveDate) -> NaiveDate {
    add_months(d, 1)
}

/// Whole calendar months from `from`'s month to `to`'s month (negative when
/// `to` is earlier): 0 within one month, 1 from any day of January to any day
/// of February.
pub fn months_between(from: NaiveDate, to: NaiveDate) -> i32 {
    (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32
}

/// Days of `d`'s month (28 to 31).
pub fn days_in_month(d: NaiveDate) -> u32 {
    (next_month(d) - first_of_month(d)).num_days() as u32
}

/// The first instant (UTC) of day `d`.
pub fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

/// The first instant (UTC) of the day after `d`: the exclusive end of day `d`.
pub fn next_day_start(d: NaiveDate) -> DateTime<Utc> {
    d.succ_opt().map(day_start).unwrap_or_else(|| day_start(d))
}

/// The first instant of day `d` in time zone `tz`: local midnight, or, where
/// a daylight-saving jump skips midnight, the first local time that exists.
pub fn local_day_start(d: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    // Gaps are at most a few hours; walk forward a quarter-hour at a time.
    for quarter in 0..96i64 {
        let local = d.and_time(chrono::NaiveTime::MIN) + chrono::Duration::minutes(15 * quarter);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    day_start(d)
}

/// Day `d` in time zone `tz` as UTC instants `[start, end)`: from local midnight
/// to the next local midnight (23 or 25 hours long on daylight-saving days).
pub fn local_day_range(d: NaiveDate, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = d.succ_opt().map(|n| local_day_start(n, tz)).unwrap_or_else(|| next_day_start(d));
    (local_day_start(d, tz), end)
}

/// The month key `YYYY-MM` of `d`, as the rollups and alert keys store it.
pub fn month_key(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

/// The first day of the month a `YYYY-MM` key names; `None` if it does not parse.
pub fn parse_month(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()
}

/// Saturday or Sunday.
pub fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The Monday of `d`'s week.
pub fn week_start(d: NaiveDate) -> NaiveDate {
    d - chrono::Duration::days(d.weekday().num_days_from_monday() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn month_boundaries() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(month_start(t), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(next_month_start(t), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        let first = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        assert_eq!(month_start(first), first);
        assert_eq!(next_month_start(first), Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn months_forward_and_back() {
        assert_eq!(first_of_month(d("2026-02-17")), d("2026-02-01"));
        assert_eq!(add_months(d("2026-02-17"), 0), d("2026-02-01"));
        assert_eq!(add_months(d("2026-11-30"), 2), d("2027-01-01"));
        assert_eq!(add_months(d("2026-01-31"), -1), d("2025-12-01"));
        assert_eq!(add_months(d("2026-03-15"), -27), d("2023-12-01"));
        assert_eq!(next_month(d("2026-12-05")), d("2027-01-01"));
        assert_eq!(months_between(d("2026-01-31"), d("2026-02-01")), 1);
        assert_eq!(months_between(d("2026-05-01"), d("2026-05-31")), 0);
        assert_eq!(months_between(d("2027-01-10"), d("2026-11-10")), -2);
        // No panic at the ends of chrono's range: the input comes back.
        assert_eq!(add_months(NaiveDate::MAX, 1), NaiveDate::MAX);
    }

    #[test]
    fn days_of_months_and_leap_years() {
        assert_eq!(days_in_month(d("2026-02-10")), 28);
        assert_eq!(days_in_month(d("2028-02-10")), 29);
        assert_eq!(days_in_month(d("2026-04-30")), 30);
        assert_eq!(days_in_month(d("2026-12-01")), 31);
    }

    #[test]
    fn day_ranges() {
        assert_eq!(day_start(d("2026-06-20")), Utc.with_ymd_and_hms(2026, 6, 20, 0, 0, 0).unwrap());
        assert_eq!(next_day_start(d("2026-12-31")), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn month_keys_round_trip() {
        assert_eq!(month_key(d("2026-06-20")), "2026-06");
        assert_eq!(parse_month("2026-06"), Some(d("2026-06-01")));
        assert_eq!(parse_month("June"), None);
    }

    #[test]
    fn weekends_and_weeks() {
        assert!(is_weekend(d("2026-06-06")) && is_weekend(d("2026-06-07")));
        assert!(!is_weekend(d("2026-06-08")));
        assert_eq!(week_start(d("2026-06-07")), d("2026-06-01"));
        assert_eq!(week_start(d("2026-06-01")), d("2026-06-01"));
    }
}
