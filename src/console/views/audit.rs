//! The Audit log view's data: a search of the append-only audit log, cut at a limit.

use crate::console::service::{Res, Service, msg};
use crate::domain::AuditQuery;
use crate::store::AuditRow;

#[derive(Debug, Clone, PartialEq)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    pub actions: Vec<String>,
    /// True when the limit cut the list short.
    pub truncated: bool,
}

impl Service {
    pub(in crate::console) fn audit(&self, q: &AuditQuery) -> Res<AuditView> {
        if let (Some(f), Some(t)) = (q.from, q.to)
            && t <= f
        {
            return Err("the 'to' date must be after the 'from' date".into());
        }
        let limit = if q.limit == 0 { 2_000 } else { q.limit };
        let mut q = q.clone();
        q.limit = limit + 1;
        let mut rows = self.store.audit_search(&q).map_err(msg)?;
        let truncated = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(AuditView { rows, actions: self.store.audit_actions().map_err(msg)?, truncated })
    }
}
