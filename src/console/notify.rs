//! Desktop notifications for critical alerts and wedding-day incidents,
//! through the desktop's notification service (D-Bus session on Linux, via
//! `notify-rust`). Off until the UI switches them on (the switch is
//! remembered by the UI); never on the UI thread: a task on the console's
//! runtime reads the open alerts every few seconds, and a named thread
//! talks to the notification service, so a slow or missing service never
//! delays anything.
//!
//! What is notified, once each: an incident whose alerts include a critical
//! one or one raised on a supplier's wedding day (one notification per
//! incident, not per alert), and any other critical or wedding-day alert.
//! Alerts already open when notifications are switched on are not notified.

use crate::domain::health::Severity;
use crate::store::{Alert, Store};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the open alerts are read.
pub const POLL: Duration = Duration::from_secs(3);

/// One desktop notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub summary: String,
    pub body: String,
    pub critical: bool,
}

/// Whether an alert was raised on a supplier's wedding day (raised already escalated).
fn wedding_day(a: &Alert) -> bool {
    a.escalated_at == Some(a.raised_at)
}

/// The notifications due for `open` alerts, given what was notified before
/// (`seen`: `incident:N` and `alert:N` keys, updated).
pub fn due(open: &[Alert], seen: &mut HashSet<String>) -> Vec<Note> {
    let mut out = Vec::new();
    for a in open {
        if !(a.severity == Severity::Critical || wedding_day(a)) {
            continue;
        }
        let key = match a.incident_id {
            Some(i) => format!("incident:{i}"),
            None => format!("alert:{}", a.id),
        };
        if !seen.insert(key) {
            continue;
        }
        let what = if a.incident_id.is_some() { "Incident" } else { "Alert" };
        let day = if wedding_day(a) { " on a wedding day" } else { "" };
        out.push(Note {
            summary: format!("Switchboard: {what}{day} ({})", a.severity.as_str()),
            body: a.message.clone(),
            critical: a.severity == Severity::Critical,
        });
    }
    out
}

/// The keys of alerts that are open now (marked as seen when notifications start).
fn keys_of(open: &[Alert]) -> HashSet<String> {
    open.iter()
        .map(|a| match a.incident_id {
            Some(i) => format!("incident:{i}"),
            None => format!("alert:{}", a.id),
        })
        .collect()
}

/// Sends notifications on its own thread.
pub type Sink = Arc<dyn Fn(Note) + Send + Sync>;

/// The desktop's notification service, called on a thread named `desktop-notify`.
pub fn desktop_sink() -> Option<Sink> {
    let (tx, rx) = std::sync::mpsc::channel::<Note>();
    std::thread::Builder::new()
        .name("desktop-notify".into())
        .spawn(move || {
            let mut warned = false;
            while let Ok(n) = rx.recv() {
                let mut d = notify_rust::Notification::new();
                d.appname("Switchboard").summary(&n.summary).body(&n.body);
                #[cfg(all(unix, not(target_os = "macos")))]
                d.urgency(if n.critical { notify_rust::Urgency::Critical } else { notify_rust::Urgency::Normal });
                if let Err(e) = d.show()
                    && !warned
                {
                    warned = true;
                    tracing::warn!(error = %e, "desktop notifications are not delivered (no notification service on the session bus?)");
                }
            }
        })
        .ok()?;
    let tx = Mutex::new(tx);
    Some(Arc::new(move |n| {
        let _ = tx.lock().send(n);
    }))
}

/// The switch and what was notified.
pub struct Notifier {
    enabled: AtomicBool,
    started: AtomicBool,
    seen: Mutex<Option<HashSet<String>>>,
    sink: Mutex<Option<Sink>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier { enabled: AtomicBool::new(false), started: AtomicBool::new(false), seen: Mutex::new(None), sink: Mutex::new(None) }
    }
}

impl Notifier {
    /// Switches notifications on or off; the first switch-on starts the polling
    /// task on `rt` with `sink` (the desktop's service unless a test gives one).
    pub fn set(self: &Arc<Self>, on: bool, store: Arc<Store>, rt: &tokio::runtime::Handle, sink: Option<Sink>) {
        self.enabled.store(on, Ordering::SeqCst);
        if !on {
            *self.seen.lock() = None;
            return;
        }
        if self.sink.lock().is_none() {
            *self.sink.lock() = sink.or_else(desktop_sink);
        }
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        rt.spawn(async move {
            loop {
                if me.enabled.load(Ordering::SeqCst) {
                    let (me2, store) = (me.clone(), store.clone());
                    let _ = tokio::task::spawn_blocking(move || me2.poll(&store)).await;
                }
                tokio::time::sleep(POLL).await;
            }
        });
    }

    /// One round: reads the open alerts and sends what is due.
    pub fn poll(&self, store: &Store) {
        let open = match store.list_alerts(true, 10_000) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read alerts for desktop notifications");
                return;
            }
        };
        let notes = {
            let mut seen = self.seen.lock();
            match seen.as_mut() {
                // Switched on just now: what is already open is not news.
                None => {
                    *seen = Some(keys_of(&open));
                    Vec::new()
                }
                Some(s) => due(&open, s),
            }
        };
        if let Some(sink) = self.sink.lock().clone() {
            for n in notes {
                sink(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::health::AlertKind;
    use chrono::TimeZone;

    fn alert(id: i64, severity: Severity, incident: Option<i64>, wedding: bool) -> Alert {
        let t = chrono::Utc.with_ymd_and_hms(2026, 6, 13, 14, 0, 0).unwrap();
        Alert {
            id,
            kind: AlertKind::ProviderDown,
            condition_key: format!("k{id}"),
            severity,
            supplier_id: None,
            account_id: None,
            message: format!("alert {id}"),
            raised_at: t,
            escalated_at: wedding.then_some(t),
            acknowledged_at: None,
            resolved_at: None,
            incident_id: incident,
        }
    }

    #[test]
    fn critical_alerts_and_wedding_day_incidents_are_notified_once_per_incident() {
        let mut seen = HashSet::new();
        let open = [
            alert(1, Severity::Warning, Some(7), false),
            alert(2, Severity::Critical, Some(7), false),
            alert(3, Severity::Critical, Some(7), false),
            alert(4, Severity::Warning, None, false),
            alert(5, Severity::Critical, Some(8), true),
            alert(6, Severity::Critical, None, false),
        ];
        let notes = due(&open, &mut seen);
        assert_eq!(notes.len(), 3, "{notes:#?}");
        assert_eq!(notes[0].body, "alert 2");
        assert!(notes[1].summary.contains("wedding day"));
        assert!(notes[2].summary.starts_with("Switchboard: Alert"));
        assert!(due(&open, &mut seen).is_empty(), "once each");
        // A warning raised on a wedding day (one level up from info) is notified too.
        let w = [alert(9, Severity::Warning, Some(9), true)];
        assert_eq!(due(&w, &mut seen).len(), 1);
    }
}
