//! Money as integer micro-dollars (1 USD = 1,000,000 micros). No float sums anywhere.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);

    pub fn from_dollars_cents(dollars: i64, cents: i64) -> Self {
        Micros(dollars * 1_000_000 + cents * 10_000)
    }

    /// Decimal dollars with six decimals, e.g. `12.345678` or `-0.000100`.
    /// This is the CSV format: exact, and a spreadsheet reads it as a number.
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }

    /// Parses decimal dollars (`"1.5"`, `"0.000123"`) exactly; more than six
    /// decimals is an error rather than a silent rounding.
    pub fn parse_decimal(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches('$');
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(format!("'{s}' is not an amount in dollars"));
        }
        if frac.len() > 6 {
            return Err(format!("'{s}' has more than six decimals (micro-dollars are the smallest unit)"));
        }
        let w: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| format!("'{s}' is not an amount in dollars"))? };
        let f: i64 =
            if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().map_err(|_| format!("'{s}' is not an amount in dollars"))? };
        let v = w.checked_mul(1_000_000).and_then(|v| v.checked_add(f)).ok_or_else(|| format!("'{s}' is too large"))?;
        Ok(Micros(if neg { -v } else { v }))
    }

    pub fn as_dollars_f64(self) -> f64 {
        // Only for charts and display; never summed.
        self.0 as f64 / 1_000_000.0
    }
}

impl fmt::Display for Micros {
    /// Human display: `$12.35` above a dollar, more digits for small amounts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        if abs >= 1_000_000 {
            let cents = (abs + 5_000) / 10_000;
            let dollars = cents / 100;
            let mut grouped = String::new();
            let ds = dollars.to_string();
            for (i, ch) in ds.chars().enumerate() {
                if i > 0 && (ds.len() - i).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(ch);
            }
            write!(f, "{sign}${grouped}.{:02}", cents % 100)
        } else {
            write!(f, "{sign}$0.{:06}", abs)
        }
    }
}

impl Add for Micros {
    type Output = Micros;
    fn add(self, o: Micros) -> Micros {
        Micros(self.0.saturating_add(o.0))
    }
}
impl AddAssign for Micros {
    fn add_assign(&mut self, o: Micros) {
        self.0 = self.0.saturating_add(o.0);
    }
}
impl Sub for Micros {
    type Output = Micros;
    fn sub(self, o: Micros) -> Micros {
        Micros(self.0.saturating_sub(o.0))
    }
}
impl Neg for Micros {
    type Output = Micros;
    fn neg(self) -> Micros {
        Micros(-self.0)
    }
}
impl Sum for Micros {
    fn sum<I: Iterator<Item = Micros>>(iter: I) -> Micros {
        iter.fold(Micros::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip_is_exact() {
        for v in [0, 1, 999_999, 1_000_000, 12_345_678, -100, i64::MAX / 2] {
            let m = Micros(v);
            assert_eq!(Micros::parse_decimal(&m.to_decimal_string()).unwrap(), m);
        }
        assert_eq!(Micros(1).to_decimal_string(), "0.000001");
        assert_eq!(Micros(-1_500_000).to_decimal_string(), "-1.500000");
        assert_eq!(Micros::parse_decimal("2.5").unwrap(), Micros(2_500_000));
        assert!(Micros::parse_decimal("0.0000001").is_err());
        assert!(Micros::parse_decimal("abc").is_err());
    }

    #[test]
    fn display_groups_thousands() {
        assert_eq!(Micros(1_234_567_890_000).to_string(), "$1,234,567.89");
        assert_eq!(Micros(1_000_000).to_string(), "$1.00");
        assert_eq!(Micros(1234).to_string(), "$0.001234");
    }
}
