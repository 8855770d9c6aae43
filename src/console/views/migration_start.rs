//! The Migrations view's start form: the plan check before a start (the
//! routes the supplier may move to, the phases, the 48 h wedding guard and a
//! suggested start) and the parallel test run from the form (the same
//! prompts to both routes, progress, cancellation, the stored report).

use crate::console::service::{Outbox, Res, Service, lock, msg};
use crate::console::{Channel, ConsoleEvent, ParallelRow, Ticket};
use crate::domain::migration::{Criteria, PhasePlan, RouteTarget, blocking_wedding};
use crate::domain::{AccountOwner, AiMode, SupplierId, ValidationStatus};
use crate::engine::analytics::CancelHandle;
use crate::engine::parallel::ParallelError;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::sync::Arc;

/// A checked migration, before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    pub from: String,
    pub to: String,
    pub phases: Vec<PhasePlan>,
    pub criteria: Criteria,
    pub now: DateTime<Utc>,
    /// Earliest start from which no phase begins within 48 h of a wedding.
    pub earliest_start: DateTime<Utc>,
    /// A wedding within 48 h of now: starting now is refused.
    pub blocked_by: Option<NaiveDate>,
    /// A wedding whose 48 h window a later phase would begin in if started now (the plan would wait there).
    pub overlaps: Option<NaiveDate>,
}

/// The start form's answer: the supplier, the routes it may move to, and the checked plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanView {
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub ai_mode: AiMode,
    /// Platform AI and the supplier's own enabled accounts.
    pub targets: Vec<(RouteTarget, String)>,
    pub to: Option<RouteTarget>,
    /// The plan, or why this migration cannot start (a sentence).
    pub plan: Result<PlanSummary, String>,
    /// The supplier's weddings from today on (the first few).
    pub next_weddings: Vec<NaiveDate>,
    /// The supplier's time zone: times in the form are shown and typed in it.
    pub time_zone: crate::domain::supplier::Tz,
}

impl Service {
    pub(in crate::console) fn plan_migration(
        &self,
        supplier: SupplierId,
        to: Option<RouteTarget>,
        phases: Option<Vec<PhasePlan>>,
    ) -> Res<PlanView> {
        let s = self.store.supplier(supplier).map_err(msg)?;
        let now = self.clock.now();
        let today = now.date_naive();
        let own: Vec<_> =
            self.store.list_accounts(Some(AccountOwner::Supplier(supplier))).map_err(msg)?.into_iter().filter(|a| a.enabled).collect();
        let mut targets = vec![(RouteTarget::Platform, "platform AI".to_string())];
        for a in &own {
            let note = match a.last_validation {
                Some(ValidationStatus::Valid) => String::new(),
                _ => " — key not validated".into(),
            };
            targets.push((RouteTarget::Account(a.id), format!("{} (account {}){note}", a.label, a.id)));
        }
        let to = to.or(match s.ai_mode {
            AiMode::Client => Some(RouteTarget::Platform),
            AiMode::Platform => {
                own.iter().find(|a| a.last_validation == Some(ValidationStatus::Valid)).or(own.first()).map(|a| RouteTarget::Account(a.id))
            }
        });
        let plan = match to {
            None => Err(format!("{} has no provider account of its own to move to; add its key in Keys first", s.name)),
            Some(to) => {
                let labels = self.route_labels()?;
                self.migration_service()?
                    .plan(supplier, to, phases)
                    .map(|p| {
                        // The first phase whose start (if started now) falls in a wedding window.
                        let mut t = now;
                        let mut overlaps = None;
                        for ph in &p.phases {
                            if let Some(d) = blocking_wedding(t, s.wedding_calendar()) {
                                overlaps = Some(d);
                                break;
                            }
                            t += Duration::seconds(ph.min_secs);
                        }
                        PlanSummary {
                            from: Self::route_label(&labels, p.from),
                            to: Self::route_label(&labels, p.to),
                            phases: p.phases,
                            criteria: p.criteria,
                            now,
                            earliest_start: p.earliest_start,
                            blocked_by: p.blocked_by,
                            overlaps,
                        }
                    })
                    .map_err(msg)
            }
        };
        Ok(PlanView {
            supplier,
            supplier_name: s.name.clone(),
            ai_mode: s.ai_mode,
            targets,
            to,
            plan,
            next_weddings: s.weddings.iter().copied().filter(|d| *d >= today).take(6).collect(),
            time_zone: s.time_zone,
        })
    }

    /// Runs a parallel test on its own task: progress events, then the stored
    /// report. Uses the routing runtime when this console routes, otherwise a
    /// router of its own over the store with the keys from the keychain.
    pub(in crate::console) fn start_parallel(self: &Arc<Self>, supplier: SupplierId, to: RouteTarget, ticket: Ticket, out: Outbox) {
        let cancel = CancelHandle::new();
        {
            let mut running = lock(&self.parallel);
            if running.is_some() {
                let message = "a parallel test is already running; wait for it to finish or cancel it first".to_string();
                out.send(ticket, ConsoleEvent::Failed { channel: Channel::Parallel, message });
                return;
            }
            *running = Some(cancel.clone());
        }
        let svc = self.clone();
        tokio::spawn(async move {
            let res = svc.parallel_test(supplier, to, &cancel, ticket, &out).await;
            *lock(&svc.parallel) = None;
            let ev = match res {
                Ok(row) => ConsoleEvent::ParallelDone(Arc::new(row)),
                Err(Ok((done, total))) => ConsoleEvent::ParallelCancelled { done, total },
                Err(Err(message)) => ConsoleEvent::Failed { channel: Channel::Parallel, message },
            };
            out.send(ticket, ev);
        });
    }

    /// `Err(Ok((done, total)))` when cancelled, `Err(Err(message))` when it failed.
    pub(in crate::console) async fn parallel_test(
        &self,
        supplier: SupplierId,
        to: RouteTarget,
        cancel: &CancelHandle,
        ticket: Ticket,
        out: &Outbox,
    ) -> Result<ParallelRow, Result<(u32, u32), String>> {
        let s = self.store.supplier(supplier).map_err(|e| Err(msg(e)))?;
        if to == RouteTarget::Platform && s.ai_mode == AiMode::Platform {
            return Err(Err(format!("{} is already on platform AI; choose one of its own accounts to test", s.name)));
        }
        if self.store.is_postgres() {
            // This console holds only the fleet's public key and never routes:
            // an instance of the fleet runs the test.
            let candidate = match to {
                RouteTarget::Platform => crate::engine::parallel::platform_candidate(&self.store, supplier),
                RouteTarget::Account(id) => Ok(id),
            };
            let actor = crate::store::audit_actor();
            let res = match candidate {
                Ok(c) => {
                    let wait = crate::engine::parallel::fleet::CLAIM_WAIT;
                    crate::engine::parallel::fleet::run_by_fleet(&self.store, &self.clock, &actor, supplier, c, &[], cancel, wait, |p| {
                        out.send(ticket, ConsoleEvent::ParallelProgress(p))
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            return conclude_row(s.name, to, res);
        }
        let (router, offline) = match self.live().and_then(|l| l.services.router.clone()) {
            Some(r) => (r, false),
            None => {
                let keys = self.keys().map_err(Err)?;
                let r = crate::engine::runtime::offline_router(self.store.clone(), self.clock.clone(), &keys)
                    .await
                    .map_err(|e| Err(format!("cannot prepare the parallel test: {e}")))?;
                (r, true)
            }
        };
        let candidate = match to {
            RouteTarget::Platform => crate::engine::parallel::platform_candidate(&self.store, supplier),
            RouteTarget::Account(id) => Ok(id),
        };
        let res = match candidate {
            Ok(candidate) => {
                crate::engine::parallel::run_with(&router, supplier, candidate, &[], cancel, |p| {
                    out.send(ticket, ConsoleEvent::ParallelProgress(p))
                })
                .await
            }
            Err(e) => Err(e),
        };
        if offline {
            // Its shadow usage is in the database before the report is shown.
            router.ledger().flush().await;
        }
        conclude_row(s.name, to, res)
    }
}

/// The console's answer to a parallel test that ran (here or on the fleet).
fn conclude_row(
    supplier_name: String,
    to: RouteTarget,
    res: Result<crate::engine::parallel::ParallelReport, ParallelError>,
) -> Result<ParallelRow, Result<(u32, u32), String>> {
    match res {
        Ok(report) => {
            let candidate_target = match to {
                RouteTarget::Platform => RouteTarget::Platform,
                RouteTarget::Account(_) => RouteTarget::Account(report.candidate.account_id),
            };
            Ok(ParallelRow { supplier_name, report, candidate_target })
        }
        Err(ParallelError::Cancelled { done, total }) => Err(Ok((done, total))),
        Err(e) => Err(Err(format!("the parallel test of {supplier_name} failed: {e}"))),
    }
}
