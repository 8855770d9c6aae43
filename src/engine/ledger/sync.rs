//! Power mode's group `fdatasync`: the request path writes its record and
//! waits until a sync that started after its write has finished; the
//! `usage-journal-sync` thread runs one `fdatasync` for every write made
//! while the previous one ran, so N concurrent requests cost one sync, not N.

use super::{LedgerError, LedgerStats};
use crate::store::StoreError;
use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

struct State {
    /// The sequence number of the latest write.
    written: u64,
    /// The segment it went to.
    file: Option<Arc<File>>,
    stop: bool,
}

pub(super) struct GroupSync {
    state: Mutex<State>,
    cv: Condvar,
    /// The sequence number every write up to which is on disk.
    synced: tokio::sync::watch::Sender<u64>,
    stats: Arc<LedgerStats>,
}

impl GroupSync {
    pub(super) fn new(stats: Arc<LedgerStats>) -> Self {
        GroupSync {
            state: Mutex::new(State { written: 0, file: None, stop: false }),
            cv: Condvar::new(),
            synced: tokio::sync::watch::Sender::new(0),
            stats,
        }
    }

    /// Starts the sync thread; it ends after [`GroupSync::stop`].
    pub(super) fn spawn(this: Arc<Self>) -> Result<(), StoreError> {
        std::thread::Builder::new()
            .name("usage-journal-sync".into())
            .spawn(move || this.run())
            .map(|_| ())
            .map_err(|e| StoreError::Invalid(format!("cannot start the usage journal's sync thread: {e}")))
    }

    /// Write `seq` went to `file` (called under the appender's lock, in order).
    pub(super) fn written(&self, seq: u64, file: Arc<File>) {
        let mut s = self.state.lock();
        s.written = seq;
        s.file = Some(file);
        drop(s);
        self.cv.notify_one();
    }

    /// Waits until write `seq` is on disk.
    pub(super) async fn wait(&self, seq: u64) -> Result<(), LedgerError> {
        let mut rx = self.synced.subscribe();
        rx.wait_for(|v| *v >= seq).await.map(|_| ()).map_err(|_| LedgerError::Stopped)
    }

    pub(super) fn stop(&self) {
        self.state.lock().stop = true;
        self.cv.notify_one();
    }

    fn run(&self) {
        let mut done = 0u64;
        loop {
            let (target, file) = {
                let mut s = self.state.lock();
                while s.written == done && !s.stop {
                    self.cv.wait(&mut s);
                }
                if s.written == done {
                    return;
                }
                (s.written, s.file.clone())
            };
            hook_sync_gate();
            let Some(file) = file else { continue };
            match file.sync_data() {
                Ok(()) => {
                    self.stats.fdatasyncs.fetch_add(1, Relaxed);
                    done = target;
                    self.synced.send_replace(target);
                }
                Err(e) => {
                    // The writes wait (their requests are not answered) until a sync succeeds.
                    self.stats.failures.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "usage journal fdatasync failed (will retry)");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// Test hook (feature `test-hooks`): while the file named by
/// `SWITCHBOARD_HOOK_SYNC_GATE` exists, no sync starts, so a test can see
/// that responses wait for theirs.
fn hook_sync_gate() {
    #[cfg(feature = "test-hooks")]
    if let Some(p) = std::env::var_os("SWITCHBOARD_HOOK_SYNC_GATE") {
        let p = std::path::PathBuf::from(p);
        while p.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
