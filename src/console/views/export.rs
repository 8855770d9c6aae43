//! The Usage & cost view's CSV export: one export at a time on the blocking
//! pool, with progress events and cancellation.

use crate::console::service::{Outbox, Service};
use crate::console::*;
use crate::engine::analytics::CancelHandle;
use crate::engine::export::{ExportError, ExportOptions, export_usage};
use std::sync::Arc;

impl Service {
    /// Runs one export on the blocking pool; refuses a second one while it runs.
    pub(in crate::console) fn start_export(self: &Arc<Self>, opts: ExportOptions, ticket: Ticket, out: Outbox) {
        let cancel = CancelHandle::new();
        {
            let mut running = self.export.lock();
            if running.is_some() {
                let message = "an export is already running; wait for it to finish or cancel it first".to_string();
                out.send(ticket, ConsoleEvent::Failed { channel: Channel::Export, message });
                return;
            }
            *running = Some(cancel.clone());
        }
        let svc = self.clone();
        tokio::spawn(async move {
            let (store, progress_out) = (svc.store.clone(), out.clone());
            // Every answered request is in the export: this console's own
            // ledger folds first, and serving processes are waited for.
            let router = svc.live.read().as_ref().and_then(|l| l.services.router.clone());
            if let Some(r) = router {
                r.ledger().flush().await;
            }
            let res = tokio::task::spawn_blocking(move || {
                if let Err(e) = crate::engine::ledger::wait_for_live_folds(&store, std::time::Duration::from_secs(10)) {
                    tracing::warn!("cannot check the serving processes' usage journals: {e}");
                }
                export_usage(&store, &opts, &cancel, |p| progress_out.send(ticket, ConsoleEvent::ExportProgress(p)))
            })
            .await;
            *svc.export.lock() = None;
            let ev = match res {
                Ok(Ok(summary)) => ConsoleEvent::ExportDone(summary),
                Ok(Err(ExportError::Exists(path))) => ConsoleEvent::ExportExists { path },
                Ok(Err(ExportError::Cancelled)) => ConsoleEvent::ExportCancelled,
                Ok(Err(e)) => ConsoleEvent::Failed { channel: Channel::Export, message: format!("the export failed: {e}") },
                Err(e) => ConsoleEvent::Failed {
                    channel: Channel::Export,
                    message: format!("the export failed unexpectedly ({e}); nothing was written under its name. Try again"),
                },
            };
            out.send(ticket, ev);
        });
    }
}
