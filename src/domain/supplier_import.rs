//! The rules of a supplier import file: its columns (`name, vendor_type,
//! tier, mode, time_zone, weddings`, weddings as `;`-separated dates), the
//! header check (unknown or repeated columns are refused; `name`,
//! `vendor_type` and `tier` are required), one row's validation into a
//! [`NewSupplier`] with a sentence per problem, the preview and report types,
//! and the template file. Reading the file and writing the rows are
//! `engine::supplier_import`'s.

use super::supplier::{NewSupplier, Tz, normalize_weddings, parse_time_zone, validate_name};
use super::{AiMode, Tier, VendorType};
use chrono::NaiveDate;
use serde::Serialize;

/// The columns an import file may have, in the template's order.
pub const COLUMNS: [&str; 6] = ["name", "vendor_type", "tier", "mode", "time_zone", "weddings"];
/// The columns it must have.
pub const REQUIRED: [&str; 3] = ["name", "vendor_type", "tier"];
/// More rows than this are refused before any is written.
pub const MAX_ROWS: usize = 100_000;

/// The template file offered by the console and `switchboard supplier import --template`.
pub fn template() -> String {
    "name,vendor_type,tier,mode,time_zone,weddings\n\
     Willow Promise Catering,caterer,professional,platform,Europe/London,2026-06-13;2026-07-04\n\
     Capture Moments,photographer,starter,client,America/Los_Angeles,\n"
        .to_string()
}

/// Where each known column is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    idx: [Option<usize>; 6],
}

/// Checks the header row: every column known (case and surrounding spaces
/// ignored), none twice, the required ones present.
pub fn check_header(fields: &[&str]) -> Result<Header, String> {
    let mut idx = [None; 6];
    let mut unknown = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let name = f.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        match COLUMNS.iter().position(|c| *c == name) {
            Some(k) if idx[k].is_some() => return Err(format!("the column '{name}' appears twice in the header")),
            Some(k) => idx[k] = Some(i),
            None => unknown.push(if name.is_empty() { format!("(empty, column {})", i + 1) } else { format!("'{}'", f.trim()) }),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown column{} {}; the columns are {} (save the template to start from)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            COLUMNS.join(", ")
        ));
    }
    let missing: Vec<&str> = REQUIRED.iter().zip([0, 1, 2]).filter(|(_, k)| idx[*k].is_none()).map(|(c, _)| *c).collect();
    if !missing.is_empty() {
        return Err(format!("the header lacks the required column{} {}", if missing.len() == 1 { "" } else { "s" }, missing.join(", ")));
    }
    Ok(Header { idx })
}

impl Header {
    fn get<'a>(&self, fields: &[&'a str], k: usize) -> &'a str {
        self.idx[k].and_then(|i| fields.get(i)).map(|s| s.trim()).unwrap_or("")
    }

    /// The name in a row (for the report), before validation.
    pub fn name<'a>(&self, fields: &[&'a str]) -> &'a str {
        self.get(fields, 0)
    }

    /// Validates one row; `default_tz` is used when the row has no time zone.
    /// The error lists every problem of the row, separated by `; `.
    pub fn row(&self, fields: &[&str], default_tz: Tz) -> Result<NewSupplier, String> {
        let mut problems = Vec::new();
        let name = validate_name(self.get(fields, 0)).map_err(|_| problems.push(name_problem(self.get(fields, 0)))).ok();
        let vendor = parse_enum::<VendorType>(self.get(fields, 1), "vendor_type", &mut problems);
        let tier = parse_enum::<Tier>(self.get(fields, 2), "tier", &mut problems);
        let mode = match self.get(fields, 3) {
            "" => Some(AiMode::Platform),
            m => parse_enum::<AiMode>(m, "mode", &mut problems),
        };
        let tz = match self.get(fields, 4) {
            "" => Some(default_tz),
            z => parse_time_zone(z).map_err(|e| problems.push(format!("time_zone: {e}"))).ok(),
        };
        let mut weddings = Vec::new();
        for d in self.get(fields, 5).split(';').map(str::trim).filter(|d| !d.is_empty()) {
            // Strictly YYYY-MM-DD, as the console's form: "2026-06-1" is not the 1st.
            let whole = d.len() == 10 && d.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
            match d.parse::<NaiveDate>().ok().filter(|_| whole) {
                Some(day) => weddings.push(day),
                None => problems.push(format!("weddings: '{d}' is not a date; write YYYY-MM-DD, several separated by ';'")),
            }
        }
        match (name, vendor, tier, mode, tz) {
            (Some(name), Some(vendor), Some(tier), Some(mode), Some(tz)) if problems.is_empty() => {
                normalize_weddings(&mut weddings);
                let mut s = NewSupplier::new(name, vendor, tier, mode);
                s.time_zone = tz;
                s.weddings = weddings;
                Ok(s)
            }
            _ => Err(problems.join("; ")),
        }
    }
}

fn name_problem(raw: &str) -> String {
    match validate_name(raw) {
        Err(_) if raw.is_empty() => "name: empty; every supplier needs a name".into(),
        Err(e) => format!("name: {e}"),
        Ok(_) => String::new(),
    }
}

fn parse_enum<T: std::str::FromStr<Err = super::ParseEnumError>>(s: &str, column: &str, problems: &mut Vec<String>) -> Option<T> {
    if s.is_empty() {
        problems.push(format!("{column}: empty"));
        return None;
    }
    s.to_ascii_lowercase().parse::<T>().map_err(|e| problems.push(format!("{column}: {e}"))).ok()
}

/// A row that was not imported, with its line in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    pub line: u64,
    pub name: String,
    pub reason: String,
}

/// What a file holds, validated, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPreview {
    /// Data rows in the file.
    pub total: usize,
    /// Rows that can be imported, with their lines.
    pub valid: Vec<(u64, NewSupplier)>,
    pub rejected: Vec<RejectedRow>,
}

/// Progress of a running import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    pub done: usize,
    pub total: usize,
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Data rows in the file.
    pub total: usize,
    pub imported: usize,
    /// Rejected rows, by line (at validation, or when written: a name taken meanwhile).
    pub rejected: Vec<RejectedRow>,
    /// True when the import was cancelled before every valid row was written.
    pub cancelled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_refuses_unknown_repeated_and_missing_columns() {
        assert!(check_header(&["name", "vendor_type", "tier"]).is_ok());
        assert!(check_header(&[" Name ", "TIER", "vendor_type", "weddings"]).is_ok());
        let e = check_header(&["name", "vendor_type", "tier", "email"]).unwrap_err();
        assert!(e.contains("unknown column 'email'") && e.contains("time_zone"), "{e}");
        let e = check_header(&["name", "name", "tier"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = check_header(&["name", "mode"]).unwrap_err();
        assert!(e.contains("vendor_type, tier"), "{e}");
    }

    #[test]
    fn a_row_is_validated_with_every_problem_named() {
        let h = check_header(&COLUMNS).unwrap();
        let s = h.row(&["Willow", "Caterer", "scale", "", "europe/london", "2026-07-04; 2026-06-13;2026-06-13"], Tz::UTC).unwrap();
        assert_eq!((s.vendor_type, s.tier, s.ai_mode), (VendorType::Caterer, Tier::Scale, AiMode::Platform));
        assert_eq!(s.time_zone.name(), "Europe/London");
        assert_eq!(s.weddings.len(), 2);
        assert!(s.weddings[0] < s.weddings[1]);
        let e = h.row(&["", "baker", "gold", "both", "Mars/Base", "2026-13-01"], Tz::UTC).unwrap_err();
        for part in ["name: empty", "vendor_type", "tier", "mode", "time_zone", "'2026-13-01' is not a date"] {
            assert!(e.contains(part), "{part} missing from {e}");
        }
        // A short row: the missing trailing columns are empty.
        assert!(h.row(&["Solo", "florist", "starter"], Tz::UTC).is_ok());
        // A half-typed date is refused, not read as the 1st.
        let e = h.row(&["Half", "florist", "starter", "", "", "2026-06-1"], Tz::UTC).unwrap_err();
        assert!(e.contains("'2026-06-1' is not a date"), "{e}");
    }

    #[test]
    fn the_template_passes_its_own_check() {
        let t = template();
        let mut lines = t.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let h = check_header(&head).unwrap();
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            h.row(&f, Tz::UTC).unwrap();
        }
    }
}
