//! Busy polling for a lane (`serve --busy-poll-us N`, on by default with a
//! 30 µs ceiling; 0 turns it off), as HAProxy's `busy-polling` and Seastar's
//! reactor do, with the window adapted to what the lane sees, as KVM's halt
//! polling and the guest's `cpuidle-haltpoll` governor adapt theirs: after
//! the lane has done some work, instead of sleeping in `epoll_wait` at once,
//! it keeps polling its sockets (`epoll_wait` with no timeout) for up to the
//! window, so that the next event — the upstream's answer, the client's next
//! request — finds it running.
//!
//! On a virtual machine whose idle virtual CPUs halt at once (a guest with
//! halt polling off), waking a halted CPU costs tens of microseconds
//! (BENCHMARKS.md, "One connection on this VM"); a lane that polls for a
//! while is not halted when its next event comes. The price is CPU, so the
//! window follows the lane's idle spells (from its last work to its next,
//! [`Window::after`]): it opens (a quarter of the ceiling, then doubling)
//! when spells in a row are short enough that polling could have caught
//! them, stays while polling catches them, and shuts at once after a spell
//! too long for any window (a provider's answer in hundreds of
//! milliseconds), so a lane waiting on slow upstreams seldom polls, and an
//! idle one never.
//!
//! How: the lane's runtime calls [`before_park`] (tokio's `on_thread_park`)
//! whenever it has nothing left to run. If tasks of the lane ran since it
//! last did ([`Active`] counts their polls), an idle spell begins: it is
//! timed (the next poll of an [`Active`] task ends it and adapts the
//! window), and if the window is open the lane's [`spinner`] task is woken
//! instead of letting the runtime sleep. The spinner yields in a loop — a
//! current-thread runtime with a yielded task polls its I/O driver without
//! blocking — until a task of the lane runs again or the window has passed
//! with none; then it waits for the next wake-up, and the next `before_park`
//! with no work done since lets the runtime sleep.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The window's ceiling when `serve` is not told otherwise: enough for a
/// lone request's two waits on loopback (BENCHMARKS.md, "Busy polling").
pub const DEFAULT_CEILING: Duration = Duration::from_micros(30);

/// An idle spell up to this many ceilings long counts as one polling might
/// have caught: a lane that slept measures its spell with its own wake-up
/// in it (25–45 µs on a VM without halt polling), so a spell that polling
/// would have caught looks longer than the window to it.
const HORIZON: u32 = 4;

/// A lane's poll window and the idle spells that shaped it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Window {
    /// How long the lane polls before it sleeps (zero: shut).
    pub(super) now: Duration,
    /// Idle spells in a row that polling could have caught (short ones).
    short: u8,
}

impl Window {
    /// The window after an idle spell of `idle`, its ceiling `max` (KVM's
    /// `grow_halt_poll_ns`/`shrink_halt_poll_ns` rules, shrinking to zero as
    /// KVM does by default): kept when polling caught the spell; shut when
    /// the spell was too long for any window to catch; else doubled up to
    /// the ceiling — or, when shut, opened at a quarter of it once two
    /// short spells in a row show a pattern (one short spell among long ones
    /// is chance: a busy lane waiting on slow providers sees many).
    pub(super) fn after(self, idle: Duration, max: Duration) -> Self {
        if idle > max.saturating_mul(HORIZON) {
            return Self::default();
        }
        let short = self.short.saturating_add(1);
        let now = if idle <= self.now {
            self.now
        } else if !self.now.is_zero() {
            self.now.saturating_mul(2).min(max)
        } else if short >= 2 {
            max / 4
        } else {
            Duration::ZERO
        };
        Self { now, short }
    }
}

thread_local! {
    /// Polls of the lane's own tasks (connections and requests) so far.
    static ACTIVITY: Cell<u64> = const { Cell::new(0) };
    /// `ACTIVITY` when the runtime last ran out of work.
    static SPUN_AT: Cell<u64> = const { Cell::new(0) };
    /// When the current idle spell began, until a task of the lane runs.
    static IDLE_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The poll window now and its ceiling (zero: busy polling is off).
    static WINDOW: Cell<Window> = const { Cell::new(Window { now: Duration::ZERO, short: 0 }) };
    static CEILING: Cell<Duration> = const { Cell::new(Duration::ZERO) };
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
        if let Some(since) = IDLE_SINCE.take() {
            let max = CEILING.get();
            WINDOW.set(WINDOW.get().after(since.elapsed(), max));
        }
        self.0.as_mut().poll(cx)
    }
}

/// Turns busy polling on for this thread (the lane's) with the window's
/// ceiling; call before the lane's runtime runs. The window starts shut.
pub(super) fn enable(max: Duration) {
    CEILING.set(max);
    WINDOW.set(Window::default());
}

/// The lane runtime's `on_thread_park` hook (installed only when busy
/// polling is on, after [`enable`]): when the lane has done work since it
/// last ran out of it, an idle spell begins — timed, and polled through if
/// the window is open; otherwise the runtime sleeps.
pub(super) fn before_park() {
    let now = ACTIVITY.with(Cell::get);
    if SPUN_AT.with(|s| s.replace(now)) == now {
        return;
    }
    IDLE_SINCE.set(Some(Instant::now()));
    if WINDOW.get().now.is_zero() {
        return;
    }
    if let Some(w) = SPINNER.with_borrow_mut(Option::take) {
        WOKEN.with(|f| f.set(true));
        w.wake();
    }
}

/// The lane's spinner (spawned on the lane when busy polling is on): polls
/// for the window as it is when woken.
pub(super) async fn spinner() {
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
        let window = WINDOW.get().now;
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

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    /// The windows after each spell in turn, from a shut window.
    fn windows(spells: &[Duration], max: Duration) -> Vec<Duration> {
        let mut w = Window::default();
        spells
            .iter()
            .map(|&idle| {
                w = w.after(idle, max);
                w.now
            })
            .collect()
    }

    #[test]
    fn the_window_opens_over_short_spells_and_shuts_after_a_long_one() {
        let max = 30 * US;
        let zero = Duration::ZERO;
        // Shut; short spells (up to four ceilings, as a sleeping lane measures
        // them with its own wake-up): opened at a quarter on the second in a
        // row, then doubled while polling misses them, up to the ceiling.
        assert_eq!(windows(&[70 * US, 120 * US, 40 * US, 40 * US, 40 * US], max), [zero, max / 4, max / 2, max, max]);
        // Polling caught it: kept as it is.
        assert_eq!(windows(&[70 * US, 70 * US, 5 * US, 7 * US, 12 * US], max), [zero, max / 4, max / 4, max / 4, max / 2]);
        // Past four ceilings: shut at once, and the count of short spells
        // starts again.
        let shut = windows(&[70 * US, 70 * US, 40 * US, 121 * US, 20 * US, 20 * US], max);
        assert_eq!(shut, [zero, max / 4, max / 2, zero, zero, max / 4]);
        assert_eq!(windows(&[20 * US, 20 * US, 300 * MS], max)[2], zero, "a provider's answer shuts it");
        // One short spell between long ones (a lane waiting on slow providers)
        // never opens it.
        let chance = [300 * MS, 50 * US, 2 * MS, 80 * US, 900 * US, 10 * US, 3 * MS];
        assert!(windows(&chance, max).iter().all(Duration::is_zero));
        // Nonsense durations do not overflow.
        let huge = windows(&[Duration::MAX; 3], Duration::MAX);
        assert!(huge[0].is_zero() && !huge[1].is_zero() && huge[2] >= huge[1], "{huge:?}");
        assert_eq!(windows(&[Duration::MAX], max), [zero]);
        let mut w = Window::default();
        for _ in 0..300 {
            w = w.after(US, max);
        }
        assert_eq!(w.now, max / 4, "a long run of short spells does not overflow its count");
    }

    thread_local! {
        /// The spinner's polls, for these tests.
        static SPINS: Cell<u64> = const { Cell::new(0) };
    }

    /// A lane-like runtime: current-thread, with the hook and busy polling
    /// up to `max`, and a counter of the times the hook let it sleep.
    fn runtime(max: Duration, slept: Arc<AtomicU64>) -> tokio::runtime::Runtime {
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all();
        b.on_thread_park(move || {
            before_park();
            if !WOKEN.with(Cell::get) {
                slept.fetch_add(1, Ordering::Relaxed);
            }
        });
        enable(max);
        b.build().unwrap()
    }

    /// The spinner, counting its polls.
    async fn counted_spinner() {
        let spin = spinner();
        let mut spin = std::pin::pin!(spin);
        std::future::poll_fn(|cx| {
            SPINS.with(|s| s.set(s.get() + 1));
            spin.as_mut().poll(cx)
        })
        .await
    }

    /// A task of the lane waits `wait` for a byte from a peer thread.
    /// Returns the spinner's polls and the runtime's sleeps meanwhile.
    async fn lane_waits(wait: Duration, slept: &AtomicU64) -> (u64, u64) {
        let (mut ours, peer) = super::super::lanes::byte_after(wait);
        let (spins, sleeps) = (SPINS.with(Cell::get), slept.load(Ordering::Relaxed));
        let read = tokio::spawn(Active(Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let mut byte = [0u8; 1];
            ours.read_exact(&mut byte).await.unwrap();
        })));
        read.await.unwrap();
        drop(peer.join());
        (SPINS.with(Cell::get) - spins, slept.load(Ordering::Relaxed) - sleeps)
    }

    #[test]
    fn a_lane_polls_through_waits_it_can_catch_and_stops_after_a_long_idle_spell() {
        let max = 200 * MS;
        let slept = Arc::new(AtomicU64::new(0));
        let rt = runtime(max, slept.clone());
        rt.block_on(async move {
            tokio::spawn(counted_spinner());
            tokio::task::yield_now().await;
            // The window starts shut: the lane sleeps through its task's wait.
            // The spell (60 ms, well under four ceilings) is a short one, but
            // one alone does not open the window.
            let (spins, sleeps) = lane_waits(60 * MS, &slept).await;
            assert_eq!(spins, 0, "a shut window polls nothing");
            assert!(sleeps >= 1, "the lane slept while its task waited");
            assert_eq!(WINDOW.get().now, Duration::ZERO, "one short spell is not a pattern yet");
            // It grows until it covers the waits: then the lane polls
            // through a whole wait without sleeping.
            let mut waits = Vec::new();
            for _ in 0..4 {
                waits.push(lane_waits(60 * MS, &slept).await);
                if waits.last().is_some_and(|&(_, sleeps)| sleeps == 0) {
                    break;
                }
            }
            let &(spins, sleeps) = waits.last().unwrap();
            assert_eq!(sleeps, 0, "a wait polled through, within the window: {waits:?}");
            assert!(spins > 10, "the lane polled while its task waited: {waits:?}");
            assert!(WINDOW.get().now >= max / 2, "the window grew past its first opening");
            // Idle past the window: polling stops.
            tokio::time::sleep(300 * MS).await;
            let spins = SPINS.with(Cell::get);
            tokio::time::sleep(1200 * MS).await;
            assert_eq!(SPINS.with(Cell::get), spins, "an idle lane stops polling once the window has passed");
            // That spell (1.5 s, past four ceilings) shut the window: the next
            // wait sleeps again.
            let (spins, sleeps) = lane_waits(60 * MS, &slept).await;
            assert_eq!(spins, 0, "after a long idle spell the window is shut");
            assert!(sleeps >= 1);
        });
    }

    #[test]
    fn a_lane_with_no_work_of_its_own_never_spins() {
        let slept = Arc::new(AtomicU64::new(0));
        let rt = runtime(200 * MS, slept.clone());
        let spins = rt.block_on(async move {
            tokio::spawn(counted_spinner());
            WINDOW.set(Window { now: 200 * MS, short: 2 });
            // Only timers fire (as the lane's timer keeper does): not the
            // lane's own work, so nothing to poll for, open window or not.
            for _ in 0..5 {
                tokio::time::sleep(20 * MS).await;
            }
            SPINS.with(Cell::get)
        });
        assert!(spins <= 1, "the spinner was polled only to register: {spins}");
        assert!(slept.load(Ordering::Relaxed) >= 5, "the runtime slept between the timers");
    }
}
