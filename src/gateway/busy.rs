//! Busy polling for a lane (opt-in: `serve --busy-poll-us N`), as HAProxy's
//! `busy-polling` and Seastar's reactor do: after the lane has done some work,
//! instead of sleeping in `epoll_wait` at once, it keeps polling its sockets
//! (`epoll_wait` with no timeout) for up to the window, so that the next event
//! — the upstream's answer, the client's next request — finds it running.
//!
//! On a virtual machine whose idle virtual CPUs halt at once (a guest with
//! halt polling off), waking a halted CPU costs tens of microseconds
//! (BENCHMARKS.md, "One connection on this VM"); a lane that polls for a
//! while is not halted when its next event comes. The price is CPU: up to
//! the window spent polling after each burst of work, so the option is off
//! by default and meant for latency-sensitive deployments with CPU to spare.
//!
//! How: the lane's runtime calls [`before_park`] (tokio's `on_thread_park`)
//! whenever it has nothing left to run. If tasks of the lane ran since the
//! last spin began ([`Active`] counts their polls), it wakes the lane's
//! [`spinner`] task instead of letting the runtime sleep. The spinner yields
//! in a loop — a current-thread runtime with a yielded task polls its I/O
//! driver without blocking — until a task of the lane runs again or the
//! window has passed with none; then it waits for the next wake-up, and the
//! next `before_park` with no work done since lets the runtime sleep.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

thread_local! {
    /// Polls of the lane's own tasks (connections and requests) so far.
    static ACTIVITY: Cell<u64> = const { Cell::new(0) };
    /// `ACTIVITY` when the spinner was last woken.
    static SPUN_AT: Cell<u64> = const { Cell::new(0) };
    /// The spinner's waker while it waits, and whether it has been woken.
    static SPINNER: RefCell<Option<Waker>> = const { RefCell::new(None) };
    static WOKEN: Cell<bool> = const { Cell::new(false) };
}

/// A lane's task (boxed) whose polls count as work done (see the module's doc).
pub(super) struct Active<F>(pub(super) Pin<Box<F>>);

impl<F: Future> Future for Active<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        ACTIVITY.with(|a| a.set(a.get().wrapping_add(1)));
        self.0.as_mut().poll(cx)
    }
}

/// The lane runtime's `on_thread_park` hook: wakes the spinner when the
/// lane has done work since it last spun; otherwise the runtime sleeps.
pub(super) fn before_park() {
    let now = ACTIVITY.with(Cell::get);
    if SPUN_AT.with(|s| s.replace(now)) == now {
        return;
    }
    if let Some(w) = SPINNER.with_borrow_mut(Option::take) {
        WOKEN.with(|f| f.set(true));
        w.wake();
    }
}

/// The lane's spinner (spawned on the lane when busy polling is on).
pub(super) async fn spinner(window: Duration) {
    loop {
        std::future::poll_fn(|cx| {
            if WOKEN.with(|f| f.replace(false)) {
                Poll::Ready(())
            } else {
                SPINNER.with_borrow_mut(|s| *s = Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        let start = Instant::now();
        let seen = ACTIVITY.with(Cell::get);
        while ACTIVITY.with(Cell::get) == seen && start.elapsed() < window {
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    thread_local! {
        /// The spinner's polls, for these tests.
        static SPINS: Cell<u64> = const { Cell::new(0) };
    }

    /// A lane-like runtime: current-thread, with the hook when `busy`, and
    /// a counter of the times the hook let it sleep.
    fn runtime(busy: bool, slept: Arc<AtomicU64>) -> tokio::runtime::Runtime {
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all();
        if busy {
            b.on_thread_park(move || {
                let before = SPUN_AT.with(Cell::get);
                before_park();
                if SPUN_AT.with(Cell::get) == before {
                    slept.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        b.build().unwrap()
    }

    /// The spinner, counting its polls.
    async fn counted_spinner(window: Duration) {
        let spin = spinner(window);
        let mut spin = std::pin::pin!(spin);
        std::future::poll_fn(|cx| {
            SPINS.with(|s| s.set(s.get() + 1));
            spin.as_mut().poll(cx)
        })
        .await
    }

    /// A lane's task waits 100 ms for a byte from a peer thread; then the
    /// lane has nothing to do for 600 ms. Returns (the spinner's polls while
    /// the task waited, its polls while the lane was idle after the
    /// window, times the runtime slept while the task waited).
    fn run(busy: bool) -> (u64, u64, u64) {
        let slept = Arc::new(AtomicU64::new(0));
        let rt = runtime(busy, slept.clone());
        rt.block_on(async move {
            if busy {
                tokio::spawn(counted_spinner(Duration::from_millis(200)));
            }
            let (mut ours, peer) = super::super::lanes::byte_after(Duration::from_millis(100));
            let (spins, sleeps) = (SPINS.with(Cell::get), slept.load(Ordering::Relaxed));
            let read = tokio::spawn(Active(Box::pin(async move {
                use tokio::io::AsyncReadExt;
                let mut byte = [0u8; 1];
                ours.read_exact(&mut byte).await.unwrap();
            })));
            read.await.unwrap();
            let waiting = (SPINS.with(Cell::get) - spins, slept.load(Ordering::Relaxed) - sleeps);
            drop(peer.join());
            // Past the window after the task's last poll, the lane sleeps.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let idle = SPINS.with(Cell::get);
            tokio::time::sleep(Duration::from_millis(600)).await;
            (waiting.0, SPINS.with(Cell::get) - idle, waiting.1)
        })
    }

    #[test]
    fn a_busy_lane_polls_while_its_task_waits_and_sleeps_once_idle() {
        let (spins_waiting, spins_idle, slept_waiting) = run(true);
        assert!(spins_waiting > 10, "the lane polled while its task waited: {spins_waiting} spins");
        assert_eq!(slept_waiting, 0, "the lane did not sleep while its task waited, within the window");
        assert_eq!(spins_idle, 0, "an idle lane stops polling once the window has passed");
        let (spins_waiting, _, _) = run(false);
        assert_eq!(spins_waiting, 0, "without busy polling there is no spinner");
    }

    #[test]
    fn a_lane_with_no_work_of_its_own_never_spins() {
        let slept = Arc::new(AtomicU64::new(0));
        let rt = runtime(true, slept.clone());
        let spins = rt.block_on(async move {
            tokio::spawn(counted_spinner(Duration::from_millis(200)));
            // Only timers fire (as the lane's timer keeper does): not the
            // lane's own work, so nothing to poll for.
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            SPINS.with(Cell::get)
        });
        assert!(spins <= 1, "the spinner was polled only to register: {spins}");
        assert!(slept.load(Ordering::Relaxed) >= 5, "the runtime slept between the timers");
    }
}
