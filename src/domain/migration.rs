//! Migrations between routes, as a pure state machine driven by the caller's
//! clock: the phase plan (5 % → 25 % → 75 % → 100 % by default), the success
//! criteria checked on the new route's traffic in every phase, wedding-window
//! protection (no phase starts within 48 h of a supplier's wedding day,
//! measured from the local midnights of the day in the supplier's time zone), and the
//! decision of what to do next at any instant.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::provider::AccountId;
use super::supplier::WeddingCalendar;

/// Where a supplier's traffic goes: platform AI, or one of its own accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "account")]
pub enum RouteTarget {
    Platform,
    Account(AccountId),
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Platform => f.write_str("platform AI"),
            RouteTarget::Account(a) => write!(f, "account {a}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhasePlan {
    /// Share of the supplier's requests sent to the new route, 1–100.
    pub percent: u8,
    /// The phase lasts at least this long (and until enough traffic was seen).
    pub min_secs: i64,
}

/// 5 % for 10 min → 25 % for 20 min → 75 % for 30 min → 100 % for 15 min.
pub fn default_plan() -> Vec<PhasePlan> {
    vec![
        PhasePlan { percent: 5, min_secs: 600 },
        PhasePlan { percent: 25, min_secs: 1_200 },
        PhasePlan { percent: 75, min_secs: 1_800 },
        PhasePlan { percent: 100, min_secs: 900 },
    ]
}

/// Reads a plan written as `PERCENT:DURATION,…`, e.g. `5:10m,25:20m,75:30m,100:15m`
/// (durations in s, m or h; a bare number is minutes). Checked by [`validate_plan`].
pub fn parse_plan(s: &str) -> Result<Vec<PhasePlan>, String> {
    let bad_duration = |dur: &str| format!("'{}' is not a duration such as 90s, 20m or 2h", dur.trim());
    let plan = s
        .split(',')
        .map(|p| {
            let (pct, dur) = p.trim().split_once(':').ok_or_else(|| format!("'{}' is not PERCENT:DURATION, e.g. 25:20m", p.trim()))?;
            let percent: u8 = pct
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse()
                .map_err(|_| format!("'{}' is not a percentage from 1 to 100", pct.trim()))?;
            let d = dur.trim();
            let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
            let n: i64 = n.parse().map_err(|_| bad_duration(dur))?;
            let per = match unit.trim() {
                "s" => 1,
                "m" | "" => 60,
                "h" => 3_600,
                _ => return Err(bad_duration(dur)),
            };
            let min_secs = n.checked_mul(per).ok_or_else(|| bad_duration(dur))?;
            Ok(PhasePlan { percent, min_secs })
        })
        .collect::<Result<Vec<_>, String>>()?;
    validate_plan(&plan)?;
    Ok(plan)
}

/// A plan as [`parse_plan`] reads it: `5:10m,25:20m,75:30m,100:15m`.
pub fn format_plan(plan: &[PhasePlan]) -> String {
    let dur = |secs: i64| match secs {
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    plan.iter().map(|p| format!("{}:{}", p.percent, dur(p.min_secs))).collect::<Vec<_>>().join(",")
}

pub fn validate_plan(plan: &[PhasePlan]) -> Result<(), String> {
    if plan.is_empty() {
        return Err("a migration plan needs at least one phase".into());
    }
    let mut last = 0;
    for (i, p) in plan.iter().enumerate() {
        if p.percent == 0 || p.percent > 100 {
            return Err(format!("phase {} sends {} % of traffic; use 1 to 100", i + 1, p.percent));
        }
        if p.percent < last {
            return Err(format!("phase {} sends less traffic than the phase before it; shares must not decrease", i + 1));
        }
        if p.min_secs <= 0 {
            return Err(format!("phase {} needs a duration above zero", i + 1));
        }
        last = p.percent;
    }
    if last != 100 {
        return Err("the last phase must send 100 % of traffic to the new route".into());
    }
    Ok(())
}

/// Checked on the new route's traffic in every phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criteria {
    /// Highest error rate allowed, in basis points (1000 = 10 %).
    pub max_error_bp: u32,
    /// p95 latency must stay below this.
    pub max_p95_ms: u32,
    /// A phase never passes on fewer requests than this (thin traffic waits).
    pub min_requests: u32,
}

impl Default for Criteria {
    fn default() -> Self {
        Self { max_error_bp: 1_000, max_p95_ms: 2_000, min_requests: 20 }
    }
}

/// Latency upper bounds of the histogram buckets, in ms (the last is open-ended).
pub const LATENCY_BUCKETS_MS: [u32; 24] = [
    25,
    50,
    75,
    100,
    150,
    200,
    300,
    400,
    500,
    650,
    800,
    1_000,
    1_250,
    1_500,
    1_750,
    1_999,
    2_500,
    3_000,
    4_000,
    5_000,
    7_500,
    10_000,
    20_000,
    u32::MAX,
];

/// Figures of the new route's traffic in one phase.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PhaseStats {
    pub requests: u32,
    pub errors: u32,
    /// Counts per bucket of `LATENCY_BUCKETS_MS`.
    pub latency_hist: Vec<u32>,
}

impl PhaseStats {
    pub fn record(&mut self, ok: bool, latency_ms: u32) {
        if self.latency_hist.len() != LATENCY_BUCKETS_MS.len() {
            self.latency_hist = vec![0; LATENCY_BUCKETS_MS.len()];
        }
        self.requests += 1;
        if !ok {
            self.errors += 1;
        }
        let i = LATENCY_BUCKETS_MS.iter().position(|b| latency_ms <= *b).unwrap_or(LATENCY_BUCKETS_MS.len() - 1);
        self.latency_hist[i] += 1;
    }

    pub fn error_bp(&self) -> u32 {
        if self.requests == 0 { 0 } else { ((self.errors as u64 * 10_000) / self.requests as u64) as u32 }
    }

    /// The bucket bound at or above the 95th percentile (a conservative p95).
    pub fn p95_ms(&self) -> Option<u32> {
        let n: u32 = self.latency_hist.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = (n as u64 * 95).div_ceil(100) as u32;
        let mut cum = 0;
        for (i, c) in self.latency_hist.iter().enumerate() {
            cum += c;
            if cum >= rank {
                return Some(LATENCY_BUCKETS_MS[i]);
            }
        }
        LATENCY_BUCKETS_MS.last().copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    Running,
    Paused,
    Completed,
    RolledBack,
    Aborted,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Running => "running",
            MigrationState::Paused => "paused",
            MigrationState::Completed => "completed",
            MigrationState::RolledBack => "rolled_back",
            MigrationState::Aborted => "aborted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Paused, Self::Completed, Self::RolledBack, Self::Aborted].into_iter().find(|v| v.as_str() == s)
    }
    pub fn is_active(self) -> bool {
        matches!(self, MigrationState::Running | MigrationState::Paused)
    }
}

/// What the migration should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Keep going in the current phase.
    Stay,
    /// The phase's time is up but it has seen too few requests to judge.
    WaitForTraffic { seen: u32, needed: u32 },
    /// The phase passed, but the next may not begin yet (a wedding is near).
    WaitForWindow { opens: DateTime<Utc> },
    /// Begin phase `next` (0-based).
    Advance { next: usize },
    /// The last phase passed: the new route becomes the supplier's route.
    Complete,
    /// A check failed: all traffic back to the old route at once.
    Rollback { reason: String },
}

/// How close to a wedding a phase may not begin.
pub const WEDDING_GUARD_HOURS: i64 = 48;

/// The time span around a wedding day in which no phase may begin: 48 h before
/// the day's local midnight to 48 h after its end (the next local midnight).
fn guard(weddings: WeddingCalendar<'_>, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let (start, end) = weddings.day_range(day);
    (start - Duration::hours(WEDDING_GUARD_HOURS), end + Duration::hours(WEDDING_GUARD_HOURS))
}

/// When a phase may next begin at or after `now`, given the supplier's weddings
/// (sorted). `now` itself when no wedding is within 48 h.
pub fn next_allowed(now: DateTime<Utc>, weddings: WeddingCalendar<'_>) -> DateTime<Utc> {
    let mut t = now;
    // Guards may chain (weddings on consecutive weekends); walk forward.
    for _ in 0..weddings.days.len() + 1 {
        match weddings.days.iter().map(|d| guard(weddings, *d)).find(|(a, b)| t >= *a && t < *b) {
            Some((_, end)) => t = end,
            None => return t,
        }
    }
    t
}

/// The wedding whose guard blocks `now`, if any.
pub fn blocking_wedding(now: DateTime<Utc>, weddings: WeddingCalendar<'_>) -> Option<NaiveDate> {
    weddings.days.iter().copied().find(|d| {
        let (a, b) = guard(weddings, *d);
        now >= a && now < b
    })
}

/// The earliest start at or after `from` from which the whole plan can run
/// without any phase beginning inside a wedding guard.
pub fn suggest_start(from: DateTime<Utc>, weddings: WeddingCalendar<'_>, plan: &[PhasePlan]) -> DateTime<Utc> {
    let mut start = next_allowed(from, weddings);
    'search: for _ in 0..400 {
        let mut t = start;
        for p in plan {
            if next_allowed(t, weddings) != t {
                start = next_allowed(t, weddings);
                continue 'search;
            }
            t += Duration::seconds(p.min_secs);
        }
        return start;
    }
    start
}

/// Decides the next step of a running phase.
pub fn evaluate(
    plan: &[PhasePlan],
    criteria: &Criteria,
    phase: usize,
    phase_elapsed_secs: i64,
    stats: &PhaseStats,
    now: DateTime<Utc>,
    weddings: WeddingCalendar<'_>,
) -> Step {
    let Some(p) = plan.get(phase) else { return Step::Complete };
    // Failing checks roll back at once, at any point of the phase, once there
    // is enough evidence to judge.
    if stats.requests >= criteria.min_requests {
        if stats.error_bp() > criteria.max_error_bp {
            return Step::Rollback {
                reason: format!(
                    "error rate {:.1} % on the new route in phase {} ({} of {} requests) is above {:.1} %",
                    stats.error_bp() as f64 / 100.0,
                    phase + 1,
                    stats.errors,
                    stats.requests,
                    criteria.max_error_bp as f64 / 100.0
                ),
            };
        }
        if let Some(p95) = stats.p95_ms()
            && p95 >= criteria.max_p95_ms
        {
            return Step::Rollback {
                reason: format!(
                    "p95 response time {} ms on the new route in phase {} is not below {} ms",
                    p95,
                    phase + 1,
                    criteria.max_p95_ms
                ),
            };
        }
    }
    if phase_elapsed_secs < p.min_secs {
        return Step::Stay;
    }
    if stats.requests < criteria.min_requests {
        return Step::WaitForTraffic { seen: stats.requests, needed: criteria.min_requests };
    }
    if phase + 1 >= plan.len() {
        return Step::Complete;
    }
    let opens = next_allowed(now, weddings);
    if opens > now {
        return Step::WaitForWindow { opens };
    }
    Step::Advance { next: phase + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn stats(requests: u32, errors: u32, latency: u32) -> PhaseStats {
        let mut s = PhaseStats::default();
        for i in 0..requests {
            s.record(i >= errors, latency);
        }
        s
    }

    #[test]
    fn plans_are_read_and_written_as_percent_duration() {
        assert_eq!(parse_plan("5:10m,25:20m,75:30m,100:15m").unwrap(), default_plan());
        assert_eq!(format_plan(&default_plan()), "5:10m,25:20m,75:30m,100:15m");
        assert_eq!(
            parse_plan(" 50 % : 90s , 100:2h").unwrap(),
            vec![PhasePlan { percent: 50, min_secs: 90 }, PhasePlan { percent: 100, min_secs: 7_200 }]
        );
        assert_eq!(parse_plan("100:30").unwrap(), vec![PhasePlan { percent: 100, min_secs: 1_800 }], "a bare number is minutes");
        assert_eq!(format_plan(&[PhasePlan { percent: 100, min_secs: 90 }]), "100:90s");
        assert!(parse_plan("50").unwrap_err().contains("PERCENT:DURATION"));
        assert!(parse_plan("300:1m").unwrap_err().contains("percentage"));
        assert!(parse_plan("100:5d").unwrap_err().contains("duration"));
        assert!(parse_plan("100:99999999999999999h").unwrap_err().contains("duration"), "no overflow");
        assert!(parse_plan("25:1m").unwrap_err().contains("100 %"), "validated");
        assert!(parse_plan("").is_err());
    }

    #[test]
    fn default_plan_is_valid_and_checked() {
        assert!(validate_plan(&default_plan()).is_ok());
        assert!(validate_plan(&[]).is_err());
        assert!(validate_plan(&[PhasePlan { percent: 50, min_secs: 60 }]).is_err());
        assert!(validate_plan(&[PhasePlan { percent: 50, min_secs: 60 }, PhasePlan { percent: 20, min_secs: 60 }]).is_err());
    }

    #[test]
    fn a_phase_stays_waits_advances_and_completes() {
        let plan = default_plan();
        let c = Criteria::default();
        let good = stats(50, 1, 300);
        assert_eq!(evaluate(&plan, &c, 0, 599, &good, at(0), WeddingCalendar::utc(&[])), Step::Stay);
        assert_eq!(evaluate(&plan, &c, 0, 600, &good, at(0), WeddingCalendar::utc(&[])), Step::Advance { next: 1 });
        assert_eq!(
            evaluate(&plan, &c, 0, 600, &stats(5, 0, 300), at(0), WeddingCalendar::utc(&[])),
            Step::WaitForTraffic { seen: 5, needed: 20 }
        );
        assert_eq!(evaluate(&plan, &c, 3, 900, &good, at(0), WeddingCalendar::utc(&[])), Step::Complete);
    }

    #[test]
    fn failing_checks_roll_back_at_once() {
        let plan = default_plan();
        let c = Criteria::default();
        // 3 of 20 = 15 % errors.
        assert!(matches!(evaluate(&plan, &c, 1, 10, &stats(20, 3, 300), at(0), WeddingCalendar::utc(&[])), Step::Rollback { .. }));
        // Exactly 10 % passes.
        assert_eq!(evaluate(&plan, &c, 1, 10, &stats(20, 2, 300), at(0), WeddingCalendar::utc(&[])), Step::Stay);
        // p95 of 2.5 s.
        match evaluate(&plan, &c, 2, 10, &stats(40, 0, 2_400), at(0), WeddingCalendar::utc(&[])) {
            Step::Rollback { reason } => assert!(reason.contains("p95"), "{reason}"),
            s => panic!("{s:?}"),
        }
        // Too little evidence: no verdict yet.
        assert_eq!(evaluate(&plan, &c, 1, 10, &stats(3, 3, 300), at(0), WeddingCalendar::utc(&[])), Step::Stay);
    }

    #[test]
    fn p95_is_conservative() {
        let mut s = PhaseStats::default();
        for _ in 0..94 {
            s.record(true, 100);
        }
        for _ in 0..6 {
            s.record(true, 3_000);
        }
        assert_eq!(s.p95_ms(), Some(3_000));
    }

    #[test]
    fn no_phase_begins_within_48_hours_of_a_wedding() {
        let wedding = NaiveDate::from_ymd_opt(2026, 6, 6).unwrap(); // Saturday
        let days = [wedding];
        let w = WeddingCalendar::utc(&days);
        // Thursday 00:00 is exactly 48 h before: blocked until Monday 00:00 (end of day + 48 h).
        let thu = Utc.with_ymd_and_hms(2026, 6, 4, 0, 0, 0).unwrap();
        let mon = Utc.with_ymd_and_hms(2026, 6, 9, 0, 0, 0).unwrap();
        assert_eq!(next_allowed(thu - Duration::seconds(1), w), thu - Duration::seconds(1));
        assert_eq!(next_allowed(thu, w), mon);
        assert_eq!(blocking_wedding(thu, w), Some(wedding));
        let plan = default_plan();
        let good = stats(50, 0, 300);
        assert_eq!(evaluate(&plan, &Criteria::default(), 0, 600, &good, thu, w), Step::WaitForWindow { opens: mon });
        // Chained weddings push the window further.
        let w2 = [wedding, NaiveDate::from_ymd_opt(2026, 6, 10).unwrap()];
        assert_eq!(next_allowed(thu, WeddingCalendar::utc(&w2)), Utc.with_ymd_and_hms(2026, 6, 13, 0, 0, 0).unwrap());
    }

    #[test]
    fn suggested_start_fits_the_whole_plan_before_a_guard() {
        let wedding = NaiveDate::from_ymd_opt(2026, 6, 6).unwrap();
        let plan = default_plan(); // 75 min in all
        // 30 min before the guard opens: the plan would run into it, so wait until after.
        let guard_start = Utc.with_ymd_and_hms(2026, 6, 4, 0, 0, 0).unwrap();
        let s = suggest_start(guard_start - Duration::minutes(30), WeddingCalendar::utc(&[wedding]), &plan);
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 6, 9, 0, 0, 0).unwrap());
        let s = suggest_start(guard_start - Duration::hours(3), WeddingCalendar::utc(&[wedding]), &plan);
        assert_eq!(s, guard_start - Duration::hours(3));
    }

    #[test]
    fn the_guard_is_measured_from_the_wedding_days_local_midnights() {
        // Saturday 2026-06-06 in Los Angeles (UTC-7): the day runs from 07:00 UTC
        // on the 6th to 07:00 UTC on the 7th; the guard 48 h either side.
        let wedding = NaiveDate::from_ymd_opt(2026, 6, 6).unwrap();
        let days = [wedding];
        let la = WeddingCalendar { days: &days, tz: chrono_tz::America::Los_Angeles };
        let opens_utc = Utc.with_ymd_and_hms(2026, 6, 4, 7, 0, 0).unwrap();
        let closes_utc = Utc.with_ymd_and_hms(2026, 6, 9, 7, 0, 0).unwrap();
        assert_eq!(blocking_wedding(opens_utc - Duration::seconds(1), la), None);
        assert_eq!(blocking_wedding(opens_utc, la), Some(wedding));
        assert_eq!(next_allowed(opens_utc, la), closes_utc);
        // Monday 03:00 UTC is still Sunday evening in California, within 48 h of
        // the day's end: a UTC calendar would already allow it.
        let mon_3am = Utc.with_ymd_and_hms(2026, 6, 9, 3, 0, 0).unwrap();
        assert_eq!(blocking_wedding(mon_3am, la), Some(wedding));
        assert_eq!(blocking_wedding(mon_3am, WeddingCalendar::utc(&days)), None);
        let plan = default_plan();
        assert_eq!(
            evaluate(&plan, &Criteria::default(), 0, 600, &stats(50, 0, 300), mon_3am, la),
            Step::WaitForWindow { opens: closes_utc }
        );
        // A wedding on the day the clocks fall back (25 hours long).
        let fall = [NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()];
        let la = WeddingCalendar { days: &fall, tz: chrono_tz::America::Los_Angeles };
        assert_eq!(
            next_allowed(Utc.with_ymd_and_hms(2026, 10, 30, 7, 0, 0).unwrap(), la),
            Utc.with_ymd_and_hms(2026, 11, 4, 8, 0, 0).unwrap()
        );
    }
}

/// One phase as it happened (or is planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub percent: u8,
    pub min_secs: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `passed`, `rolled_back`, `aborted`, or None while running / not started.
    pub outcome: Option<String>,
    pub stats: PhaseStats,
}

/// A migration and everything it has seen, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub id: i64,
    pub supplier: super::SupplierId,
    pub from: RouteTarget,
    pub to: RouteTarget,
    pub state: MigrationState,
    pub criteria: Criteria,
    /// Index of the current (or last) phase.
    pub phase: usize,
    /// When the current phase's clock last (re)started; None while paused.
    pub phase_started_at: Option<DateTime<Utc>>,
    /// Phase time accumulated before the last pause, in ms.
    pub phase_elapsed_ms: i64,
    /// Why it ended (rollback reason, abort note) or is waiting.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub phases: Vec<PhaseRecord>,
}

impl Migration {
    pub fn new(
        supplier: super::SupplierId,
        from: RouteTarget,
        to: RouteTarget,
        plan: &[PhasePlan],
        criteria: Criteria,
        now: DateTime<Utc>,
    ) -> Self {
        let mut phases: Vec<PhaseRecord> = plan
            .iter()
            .map(|p| PhaseRecord {
                percent: p.percent,
                min_secs: p.min_secs,
                started_at: None,
                ended_at: None,
                outcome: None,
                stats: PhaseStats::default(),
            })
            .collect();
        if let Some(first) = phases.first_mut() {
            first.started_at = Some(now);
        }
        Self {
            id: 0,
            supplier,
            from,
            to,
            state: MigrationState::Running,
            criteria,
            phase: 0,
            phase_started_at: Some(now),
            phase_elapsed_ms: 0,
            reason: None,
            created_at: now,
            updated_at: now,
            phases,
        }
    }

    pub fn plan(&self) -> Vec<PhasePlan> {
        self.phases.iter().map(|p| PhasePlan { percent: p.percent, min_secs: p.min_secs }).collect()
    }

    /// Time spent in the current phase (pauses excluded).
    pub fn phase_elapsed_secs(&self, now: DateTime<Utc>) -> i64 {
        let running = self.phase_started_at.map(|s| (now - s).num_milliseconds().max(0)).unwrap_or(0);
        (self.phase_elapsed_ms + running) / 1000
    }

    /// Share of traffic the new route gets right now.
    pub fn current_percent(&self) -> u8 {
        if self.state.is_active() { self.phases.get(self.phase).map(|p| p.percent).unwrap_or(0) } else { 0 }
    }

    /// Evaluates the current phase.
    pub fn step(&self, now: DateTime<Utc>, weddings: WeddingCalendar<'_>) -> Step {
        if self.state != MigrationState::Running {
            return Step::Stay;
        }
        let stats = self.phases.get(self.phase).map(|p| p.stats.clone()).unwrap_or_default();
        evaluate(&self.plan(), &self.criteria, self.phase, self.phase_elapsed_secs(now), &stats, now, weddings)
    }

    /// Applies a step's effect on the record (the caller applies it to the router).
    pub fn apply(&mut self, step: &Step, now: DateTime<Utc>) {
        match step {
            Step::Advance { next } => {
                if let Some(p) = self.phases.get_mut(self.phase) {
                    p.ended_at = Some(now);
                    p.outcome = Some("passed".into());
                }
                self.phase = *next;
                if let Some(p) = self.phases.get_mut(self.phase) {
                    p.started_at = Some(now);
                }
                self.phase_started_at = Some(now);
                self.phase_elapsed_ms = 0;
                self.reason = None;
            }
            Step::Complete => {
                if let Some(p) = self.phases.get_mut(self.phase) {
                    p.ended_at = Some(now);
                    p.outcome = Some("passed".into());
                }
                self.state = MigrationState::Completed;
                self.reason = None;
            }
            Step::Rollback { reason } => self.end(MigrationState::RolledBack, "rolled_back", reason, now),
            Step::WaitForTraffic { seen, needed } => {
                self.reason = Some(format!("waiting for traffic: {seen} of {needed} requests seen on the new route"));
            }
            Step::WaitForWindow { opens } => {
                self.reason =
                    Some(format!("waiting: a wedding is within 48 h; the next phase may begin at {}", opens.format("%Y-%m-%d %H:%M UTC")));
            }
            Step::Stay => {}
        }
        self.updated_at = now;
    }

    pub fn pause(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        if self.state != MigrationState::Running {
            return Err(format!("migration {} is {}, not running", self.id, self.state.as_str()));
        }
        if let Some(s) = self.phase_started_at.take() {
            self.phase_elapsed_ms += (now - s).num_milliseconds().max(0);
        }
        self.state = MigrationState::Paused;
        self.updated_at = now;
        Ok(())
    }

    pub fn resume(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        if self.state != MigrationState::Paused {
            return Err(format!("migration {} is {}, not paused", self.id, self.state.as_str()));
        }
        self.phase_started_at = Some(now);
        self.state = MigrationState::Running;
        self.updated_at = now;
        Ok(())
    }

    /// Ends the migration with all traffic back on the old route.
    pub fn end(&mut self, state: MigrationState, outcome: &str, reason: &str, now: DateTime<Utc>) {
        if let Some(p) = self.phases.get_mut(self.phase) {
            p.ended_at = Some(now);
            p.outcome = Some(outcome.into());
        }
        self.state = state;
        self.reason = Some(reason.to_string());
        self.phase_started_at = None;
        self.updated_at = now;
    }
}
