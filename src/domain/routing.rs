//! The routing decision: given a snapshot of live state for one supplier's
//! request, which accounts to try, in which order, and under which route.
//! Pure and deterministic; the engine's router builds the snapshot and carries
//! the plan out (calling providers, failing over along the list).

use super::provider::{AccountId, ProviderKind};
use super::supplier::AiMode;
use super::usage::Route;
use serde::Serialize;

/// One candidate account as the router sees it right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub account: AccountId,
    pub provider: ProviderKind,
    /// Breaker lets a request through and the account is enabled with a key.
    pub available: bool,
}

/// The route a running migration moves traffic to, with its current share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The migration's new route: the supplier's own account, or platform AI (`None`).
    pub to_account: Option<AccountId>,
    /// Share of requests (0–100) the new route gets.
    pub percent: u8,
}

#[derive(Debug, Clone)]
pub struct RoutingInput<'a> {
    pub mode: AiMode,
    /// The supplier's own accounts in preference order.
    pub client: &'a [Candidate],
    /// WedSync's accounts in preference order (best match for the model first).
    pub platform: &'a [Candidate],
    /// Whether platform AI may serve this supplier now (quota left, or a wedding day).
    pub platform_allowed: bool,
    /// Whether a client supplier may fail over onto platform AI.
    pub allow_platform_failover: bool,
    pub split: Option<Split>,
    /// A hash of the request id: the split is sticky per request id. Read
    /// only when `split` is set.
    pub request_hash: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub account: AccountId,
    pub route: Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Breaker open, disabled, or no key.
    Unavailable,
    /// Platform AI refused: quota used up.
    QuotaExceeded,
    /// The supplier forbids failover onto platform AI.
    FailoverForbidden,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    /// Accounts to try in order; the first is the normal route.
    pub attempts: Vec<Attempt>,
    pub skipped: Vec<(AccountId, SkipReason)>,
    /// True when the split sent this request to the migration's new route.
    pub migrated: bool,
}

/// Which bucket (0–99) a request falls in for a traffic split.
pub fn split_bucket(request_hash: u64) -> u8 {
    // Mix the bits so sequential ids spread evenly.
    let mut z = request_hash.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % 100) as u8
}

/// Decides the ordered attempts for one request.
///
/// - Platform supplier: platform accounts (route `Platform`), refused as a whole
///   when `platform_allowed` is false.
/// - Client supplier: its own accounts (first `Client`, the others `Client` too:
///   moving between a supplier's own accounts is not platform failover), then
///   platform accounts as `Failover` when allowed.
/// - A running migration sends `percent` % of requests (by `request_hash`) to its
///   new route first, recorded as `Migration`; the old route follows as fallback,
///   so a failing new route never fails the request.
/// - Never from platform AI onto a supplier's key: a platform supplier's plan
///   contains no client account unless a migration moves it there.
pub fn plan_route(input: &RoutingInput<'_>) -> RoutePlan {
    let mut plan = RoutePlan::default();
    let migrate = input.split.filter(|s| s.percent > 0 && split_bucket(input.request_hash) < s.percent.min(100));

    let push_platform = |plan: &mut RoutePlan, route: Route| {
        for c in input.platform {
            if !input.platform_allowed {
                plan.skipped.push((c.account, SkipReason::QuotaExceeded));
            } else if !c.available {
                plan.skipped.push((c.account, SkipReason::Unavailable));
            } else if !plan.attempts.iter().any(|a| a.account == c.account) {
                plan.attempts.push(Attempt { account: c.account, route });
            }
        }
    };
    let push_client = |plan: &mut RoutePlan, first: Option<AccountId>, route: Route| {
        let ordered = first.into_iter().chain(input.client.iter().map(|c| c.account).filter(move |a| Some(*a) != first));
        for id in ordered {
            let Some(c) = input.client.iter().find(|c| c.account == id) else { continue };
            if !c.available {
                plan.skipped.push((c.account, SkipReason::Unavailable));
            } else if !plan.attempts.iter().any(|a| a.account == c.account) {
                plan.attempts.push(Attempt { account: c.account, route });
            }
        }
    };

    if let Some(split) = migrate {
        plan.migrated = true;
        match split.to_account {
            Some(to) => {
                if let Some(c) = input.client.iter().find(|c| c.account == to) {
                    if c.available {
                        plan.attempts.push(Attempt { account: to, route: Route::Migration });
                    } else {
                        plan.skipped.push((to, SkipReason::Unavailable));
                    }
                }
            }
            None => push_platform(&mut plan, Route::Migration),
        }
    }

    match input.mode {
        AiMode::Platform => {
            let route = Route::Platform;
            push_platform(&mut plan, route);
            // During a migration to the supplier's own account, that account
            // is already first for the migrated share; the rest stay on platform.
        }
        AiMode::Client => {
            push_client(&mut plan, None, Route::Client);
            if input.allow_platform_failover {
                push_platform(&mut plan, Route::Failover);
            } else {
                for c in input.platform {
                    plan.skipped.push((c.account, SkipReason::FailoverForbidden));
                }
            }
        }
    }
    plan.skipped.retain(|(id, _)| !plan.attempts.iter().any(|a| a.account == *id));
    plan.skipped.dedup();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i64, available: bool) -> Candidate {
        Candidate { account: AccountId(id), provider: ProviderKind::OpenAi, available }
    }

    fn input<'a>(mode: AiMode, client: &'a [Candidate], platform: &'a [Candidate]) -> RoutingInput<'a> {
        RoutingInput { mode, client, platform, platform_allowed: true, allow_platform_failover: true, split: None, request_hash: 1 }
    }

    fn ids(p: &RoutePlan) -> Vec<(i64, Route)> {
        p.attempts.iter().map(|a| (a.account.0, a.route)).collect()
    }

    #[test]
    fn platform_supplier_uses_platform_and_never_a_client_key() {
        let client = [c(10, true)];
        let platform = [c(1, true), c(2, true)];
        let p = plan_route(&input(AiMode::Platform, &client, &platform));
        assert_eq!(ids(&p), vec![(1, Route::Platform), (2, Route::Platform)]);
    }

    #[test]
    fn client_supplier_fails_over_to_its_other_accounts_then_platform() {
        let client = [c(10, false), c(11, true)];
        let platform = [c(1, true)];
        let p = plan_route(&input(AiMode::Client, &client, &platform));
        assert_eq!(ids(&p), vec![(11, Route::Client), (1, Route::Failover)]);
        assert_eq!(p.skipped, vec![(AccountId(10), SkipReason::Unavailable)]);
    }

    #[test]
    fn failover_can_be_forbidden_and_quota_blocks_platform() {
        let client = [c(10, false)];
        let platform = [c(1, true)];
        let mut i = input(AiMode::Client, &client, &platform);
        i.allow_platform_failover = false;
        let p = plan_route(&i);
        assert!(p.attempts.is_empty());
        assert!(p.skipped.contains(&(AccountId(1), SkipReason::FailoverForbidden)));
        let mut i = input(AiMode::Platform, &client, &platform);
        i.platform_allowed = false;
        let p = plan_route(&i);
        assert!(p.attempts.is_empty());
        assert_eq!(p.skipped, vec![(AccountId(1), SkipReason::QuotaExceeded)]);
    }

    #[test]
    fn migration_split_is_sticky_and_close_to_its_share() {
        let client = [c(10, true)];
        let platform = [c(1, true)];
        for percent in [5u8, 25, 75, 100] {
            let mut migrated = 0;
            for h in 0..10_000u64 {
                let mut i = input(AiMode::Platform, &client, &platform);
                i.split = Some(Split { to_account: Some(AccountId(10)), percent });
                i.request_hash = h;
                let p = plan_route(&i);
                let again = plan_route(&i);
                assert_eq!(p, again, "sticky per request");
                if p.migrated {
                    migrated += 1;
                    assert_eq!(ids(&p), vec![(10, Route::Migration), (1, Route::Platform)], "old route is the fallback");
                } else {
                    assert_eq!(ids(&p), vec![(1, Route::Platform)]);
                }
            }
            let share = migrated as f64 / 100.0;
            assert!((share - percent as f64).abs() < 1.5, "{percent}% → {share}%");
        }
    }

    #[test]
    fn migration_back_to_platform() {
        let client = [c(10, true)];
        let platform = [c(1, true)];
        let mut i = input(AiMode::Client, &client, &platform);
        i.split = Some(Split { to_account: None, percent: 100 });
        let p = plan_route(&i);
        assert_eq!(ids(&p), vec![(1, Route::Migration), (10, Route::Client)]);
    }
}
