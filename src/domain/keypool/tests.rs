use super::*;
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 13, 12, 0, 0).unwrap()
}

fn pick(strategy: Strategy, settings: &[PoolSettings], states: &mut [KeyState], now: DateTime<Utc>, tokens: u64) -> Option<AccountId> {
    let mut keys: Vec<PoolKey<'_>> = states
        .iter_mut()
        .zip(settings)
        .enumerate()
        .map(|(i, (state, s))| PoolKey { account: AccountId(i as i64 + 1), settings: *s, state })
        .collect();
    let (order, _) = order_pool(strategy, &mut keys, now, tokens);
    let first = order.first().copied()?;
    states[(first.0 - 1) as usize].begin(now, tokens);
    Some(first)
}

fn shares(strategy: Strategy, settings: &[PoolSettings], n: usize, end: bool) -> Vec<usize> {
    let mut states = vec![KeyState::default(); settings.len()];
    let mut counts = vec![0; settings.len()];
    for i in 0..n {
        // Requests spread over a minute.
        let now = t0() + chrono::Duration::milliseconds((i as i64 * 60_000) / n as i64);
        if let Some(a) = pick(strategy, settings, &mut states, now, 100) {
            counts[(a.0 - 1) as usize] += 1;
            if end {
                states[(a.0 - 1) as usize].end(now, 100, Some(100), false);
            }
        }
    }
    counts
}

#[test]
fn weighted_follows_the_weights_exactly() {
    let s = [1, 2, 3].map(|w| PoolSettings { weight: Some(w), ..Default::default() });
    assert_eq!(shares(Strategy::Weighted, &s, 600, true), vec![100, 200, 300]);
    // Smooth: never the same key many times in a row.
    let mut states = vec![KeyState::default(); 3];
    let seq: Vec<i64> = (0..6).map(|_| pick(Strategy::Weighted, &s, &mut states, t0(), 1).unwrap().0).collect();
    assert_eq!(seq, vec![3, 2, 1, 3, 2, 3]);
}

#[test]
fn headroom_fills_keys_in_proportion_to_their_limits_and_stops_at_them() {
    let s = [60, 120, 300].map(|rpm| PoolSettings { rpm: Some(rpm), ..Default::default() });
    // Within the pool's capacity: each key gets its limit's share.
    let c = shares(Strategy::Headroom, &s, 480, true);
    assert_eq!(c.iter().sum::<usize>(), 480);
    for (got, want) in c.iter().zip([60, 120, 300]) {
        assert!((*got as i64 - (want * 480 / 480) as i64).abs() <= 2, "{c:?}");
    }
    // Above it: nothing past any key's limit, the rest refused.
    let c = shares(Strategy::Headroom, &s, 600, true);
    assert_eq!(c, vec![60, 120, 300]);
}

#[test]
fn least_busy_prefers_fewest_in_flight() {
    let s = [PoolSettings::default(); 3];
    let mut states = vec![KeyState::default(); 3];
    states[0].begin(t0(), 10);
    states[0].begin(t0(), 10);
    states[1].begin(t0(), 10);
    assert_eq!(pick(Strategy::LeastBusy, &s, &mut states, t0(), 10), Some(AccountId(3)));
    assert_eq!(pick(Strategy::LeastBusy, &s, &mut states, t0(), 10), Some(AccountId(2)));
    // Equal in flight: fewer tokens in the last minute wins.
    let mut states = vec![KeyState::default(); 2];
    states[0].begin(t0(), 5_000);
    states[0].end(t0(), 5_000, Some(5_000), false);
    assert_eq!(pick(Strategy::LeastBusy, &s[..2], &mut states, t0(), 10), Some(AccountId(2)));
}

#[test]
fn a_cooling_key_is_skipped_until_its_reset_and_a_budget_stops_a_key() {
    let s = [PoolSettings::default(), PoolSettings { monthly_budget: Some(Micros(1_000)), ..Default::default() }];
    let mut states = vec![KeyState::default(); 2];
    states[0].cool_down(t0() + chrono::Duration::seconds(20));
    for strategy in Strategy::ALL {
        assert_eq!(pick(*strategy, &s, &mut states, t0(), 1), Some(AccountId(2)), "{strategy}");
    }
    states[1].spend(t0(), Micros(1_000));
    assert_eq!(pick(Strategy::Headroom, &s, &mut states, t0(), 1), None);
    let h = states[1].headroom(&s[1], t0(), 1);
    assert_eq!(h.blocked, Some(Blocked::Budget));
    // After the reset the first key takes traffic again; next month the budget is fresh.
    let later = t0() + chrono::Duration::seconds(21);
    assert_eq!(pick(Strategy::Headroom, &s, &mut states, later, 1), Some(AccountId(1)));
    let july = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
    assert!(states[1].roll_month(july));
    assert_eq!(states[1].headroom(&s[1], july, 1).blocked, None);
}

#[test]
fn reported_limits_give_headroom_and_count_what_was_sent_since() {
    let s = PoolSettings::default();
    let mut k = KeyState::default();
    let w = |remaining| LimitWindow { limit: Some(100), remaining, reset_at: t0() + chrono::Duration::seconds(30) };
    k.observe(t0(), ReportedLimits { requests: Some(w(50)), ..Default::default() });
    assert_eq!(k.headroom(&s, t0(), 1).fraction, 0.5);
    for _ in 0..10 {
        k.begin(t0(), 1);
    }
    assert!((k.headroom(&s, t0(), 1).fraction - 0.4).abs() < 1e-9);
    k.observe(t0(), ReportedLimits { requests: Some(w(0)), ..Default::default() });
    assert_eq!(k.headroom(&s, t0(), 1).blocked, Some(Blocked::ProviderLimit));
    // Past the reset the window is full again.
    let h = k.headroom(&s, t0() + chrono::Duration::seconds(31), 1);
    assert_eq!((h.fraction, h.blocked), (1.0, None));
    // A token limit blocks a request bigger than what is left.
    let mut k = KeyState::default();
    let st = PoolSettings { tpm: Some(1_000), ..Default::default() };
    k.begin(t0(), 900);
    assert_eq!(k.headroom(&st, t0(), 200).blocked, Some(Blocked::OwnLimit));
    assert_eq!(k.headroom(&st, t0(), 50).blocked, None);
    // The window slides: a minute later the tokens are free again.
    assert_eq!(k.headroom(&st, t0() + chrono::Duration::seconds(60), 200).fraction, 1.0);
}

#[test]
fn statistics_count_calls_and_429s_over_five_minutes() {
    let mut k = KeyState::default();
    for i in 0..10 {
        k.begin(t0(), 1);
        k.end(t0(), 1, None, i % 5 == 0);
    }
    assert_eq!(k.recent(t0()), (10, 2));
    assert_eq!(k.recent(t0() + chrono::Duration::minutes(6)), (0, 0));
    assert_eq!((k.total_calls, k.total_429, k.in_flight), (10, 2, 0));
    assert_eq!("least-busy".parse::<Strategy>().unwrap(), Strategy::LeastBusy);
    assert_eq!(Strategy::default(), Strategy::Headroom);
}

#[test]
fn a_pool_of_one_key_is_ordered_as_the_general_order_would() {
    // Keys in every state a lone key can be in: fresh, busy, near a
    // reported limit, cooling after a 429, over its budget, with a
    // round-robin credit at the edge of its range.
    let budget = PoolSettings { monthly_budget: Some(Micros(1_000)), weight: Some(3), rpm: Some(2), ..Default::default() };
    let mut states = Vec::new();
    states.push((PoolSettings::default(), KeyState::default()));
    let mut busy = KeyState::default();
    busy.begin(t0(), 100);
    states.push((budget, busy.clone()));
    busy.begin(t0(), 100);
    states.push((budget, busy));
    let mut cooling = KeyState::default();
    cooling.cool_down(t0() + chrono::Duration::seconds(20));
    states.push((PoolSettings::default(), cooling));
    let mut spent = KeyState::default();
    spent.spend(t0(), Micros(1_000));
    states.push((budget, spent));
    for credit in [i64::MAX, i64::MIN, 7] {
        states.push((budget, KeyState { swrr: credit, ..KeyState::default() }));
    }
    for (settings, state) in states {
        for strategy in Strategy::ALL {
            for tokens in [1, 1_000_000] {
                let (mut fast, mut general) = (state.clone(), state.clone());
                let a = order_pool(*strategy, &mut [PoolKey { account: AccountId(9), settings, state: &mut fast }], t0(), tokens);
                let b = order_many(*strategy, &mut [PoolKey { account: AccountId(9), settings, state: &mut general }], t0(), tokens);
                assert_eq!(a, b, "{strategy} {tokens} {settings:?}");
                assert_eq!(fast.swrr, general.swrr, "{strategy} {tokens}: the credit after");
            }
        }
    }
}
