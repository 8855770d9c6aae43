//! A live-traffic mirror's plan (the parallel test on live traffic): what
//! share of a supplier's served requests is copied, how many copies make a
//! report, and for how long at most; its limits are checked in one place,
//! [`MirrorPlan::validate`], by the engine before a mirror starts and by the
//! console's form as it is typed.

use chrono::Duration;
use std::ops::RangeInclusive;

/// How a live-traffic mirror is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorPlan {
    /// Share of the supplier's served requests copied to the candidate, 1–100.
    pub sample_percent: u32,
    /// The report is written once this many copies are recorded (1–10,000).
    pub requests: u32,
    /// … or when this time has passed, with what was compared by then.
    pub duration: Duration,
}

impl Default for MirrorPlan {
    fn default() -> Self {
        MirrorPlan { sample_percent: 25, requests: 50, duration: Duration::days(7) }
    }
}

/// A limit of [`MirrorPlan`] that a plan breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MirrorPlanError {
    #[error("a sample of {0} % is not possible; choose 1 to 100 %")]
    SamplePercent(u32),
    #[error("{0} requests is not possible; choose 1 to 10,000")]
    Requests(u32),
    #[error("a mirror runs between one minute and 30 days")]
    Duration,
}

impl MirrorPlan {
    /// Allowed sample shares, in percent.
    pub const SAMPLE_PERCENT: RangeInclusive<u32> = 1..=100;
    /// Allowed numbers of copies to compare.
    pub const REQUESTS: RangeInclusive<u32> = 1..=10_000;
    /// The longest a mirror runs, in days.
    pub const MAX_DAYS: u32 = 30;

    /// The shortest a mirror runs.
    pub fn min_duration() -> Duration {
        Duration::minutes(1)
    }

    /// The longest a mirror runs.
    pub fn max_duration() -> Duration {
        Duration::days(i64::from(Self::MAX_DAYS))
    }

    /// Checks every limit; the first one broken is the error.
    pub fn validate(&self) -> Result<(), MirrorPlanError> {
        if !Self::SAMPLE_PERCENT.contains(&self.sample_percent) {
            return Err(MirrorPlanError::SamplePercent(self.sample_percent));
        }
        if !Self::REQUESTS.contains(&self.requests) {
            return Err(MirrorPlanError::Requests(self.requests));
        }
        if self.duration < Self::min_duration() || self.duration > Self::max_duration() {
            return Err(MirrorPlanError::Duration);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_checks_every_limit() {
        let ok = MirrorPlan::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(MirrorPlan { sample_percent: 0, ..ok }.validate(), Err(MirrorPlanError::SamplePercent(0)));
        assert_eq!(MirrorPlan { sample_percent: 101, ..ok }.validate(), Err(MirrorPlanError::SamplePercent(101)));
        assert_eq!(MirrorPlan { sample_percent: 100, requests: 10_000, ..ok }.validate(), Ok(()));
        assert_eq!(MirrorPlan { requests: 0, ..ok }.validate(), Err(MirrorPlanError::Requests(0)));
        assert_eq!(MirrorPlan { requests: 10_001, ..ok }.validate(), Err(MirrorPlanError::Requests(10_001)));
        assert_eq!(MirrorPlan { duration: Duration::seconds(59), ..ok }.validate(), Err(MirrorPlanError::Duration));
        assert_eq!(MirrorPlan { duration: Duration::days(31), ..ok }.validate(), Err(MirrorPlanError::Duration));
        assert_eq!(MirrorPlan { duration: Duration::minutes(1), ..ok }.validate(), Ok(()));
        assert_eq!(MirrorPlan { duration: Duration::days(30), ..ok }.validate(), Ok(()));
        assert_eq!(
            MirrorPlan { sample_percent: 150, ..ok }.validate().unwrap_err().to_string(),
            "a sample of 150 % is not possible; choose 1 to 100 %"
        );
    }
}
