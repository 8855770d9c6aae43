//! Presentation helpers the console service applies before a snapshot leaves
//! it: day numbers (the x coordinate of every date axis), decimation of a line
//! series to the chart's pixel width, and the quota band labels.

use chrono::{Duration, NaiveDate};

pub const QUOTA_BANDS: [&str; 5] = ["under 50 %", "50–75 %", "75–90 %", "90–100 %", "over quota"];

pub(in crate::console) fn band(percent: f64) -> usize {
    match percent {
        p if p >= 100.0 => 4,
        p if p >= 90.0 => 3,
        p if p >= 75.0 => 2,
        p if p >= 50.0 => 1,
        _ => 0,
    }
}

/// Days since 1970-01-01, the x coordinate of every date axis.
pub fn day_number(d: NaiveDate) -> f64 {
    (d - NaiveDate::default()).num_days() as f64
}

/// The date of a day number (rounded to the nearest day).
pub fn date_of_day_number(x: f64) -> Option<NaiveDate> {
    if !x.is_finite() || x.abs() > 1.0e7 {
        return None;
    }
    NaiveDate::default().checked_add_signed(Duration::days(x.round() as i64))
}

/// Keeps a line series within `max_points` by keeping, per bucket of
/// consecutive points, the first point and the minimum and maximum (in x
/// order), so peaks survive. Series already small enough are returned as is.
pub fn decimate(points: &[[f64; 2]], max_points: usize) -> Vec<[f64; 2]> {
    let max_points = max_points.max(8);
    if points.len() <= max_points {
        return points.to_vec();
    }
    let buckets = max_points / 3;
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 3 + 1);
    for chunk in points.chunks(per) {
        let first = chunk[0];
        let (mut lo, mut hi) = (first, first);
        for p in chunk {
            if p[1] < lo[1] {
                lo = *p;
            }
            if p[1] > hi[1] {
                hi = *p;
            }
        }
        let mut keep = vec![first, lo, hi];
        keep.sort_by(|a, b| a[0].total_cmp(&b[0]));
        keep.dedup();
        out.extend(keep);
    }
    if let (Some(last), Some(end)) = (points.last(), out.last())
        && last != end
    {
        out.push(*last);
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_peaks_and_ends() {
        let pts: Vec<[f64; 2]> = (0..10_000).map(|i| [i as f64, if i == 5_001 { 1e6 } else { (i % 7) as f64 }]).collect();
        let d = decimate(&pts, 300);
        assert!(d.len() <= 301, "{}", d.len());
        assert!(d.iter().any(|p| p[1] == 1e6));
        assert_eq!(d.first(), pts.first());
        assert_eq!(d.last(), pts.last());
        assert!(d.windows(2).all(|w| w[0][0] < w[1][0]));
        assert_eq!(decimate(&pts[..50], 300).len(), 50);
    }

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 6, 20).unwrap();
        assert_eq!(date_of_day_number(day_number(d)), Some(d));
        assert_eq!(date_of_day_number(f64::NAN), None);
        assert_eq!(date_of_day_number(1e300), None);
    }

    #[test]
    fn quota_bands() {
        assert_eq!([band(10.0), band(60.0), band(80.0), band(95.0), band(130.0)], [0, 1, 2, 3, 4]);
    }
}
