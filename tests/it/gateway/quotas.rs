//! Quotas through the gateway: enforced with their reset time except on
//! wedding days (overage recorded and alerted), a request near its quota
//! measured with the tokenizer, 64 concurrent clients that cannot overrun it,
//! and a wedding day protected in the supplier's own time zone.

use super::*;

#[tokio::test]
async fn quota_is_enforced_with_reset_time_except_on_wedding_days() {
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 400; // ×1.5 in June = 600
    let e = env(cfg).await;
    let wedding = june().date_naive();
    let s = e.supplier("Starter Studio", Tier::Starter, AiMode::Platform, &[]);
    let w = e.supplier("Wedding Day Studio", Tier::Starter, AiMode::Platform, &[wedding]);
    let (ts, tw) = (e.token(s, false), e.token(w, false));
    let mut events = e.router.subscribe_events();
    let mut refused = None;
    for _ in 0..30 {
        let r = e.chat(&ts, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        if r.status() == 429 {
            refused = Some(json_of(r).await.1);
            break;
        }
        e.clock.advance(Duration::seconds(2));
    }
    let b = refused.expect("quota must run out");
    assert_eq!(b["error"]["code"], "quota_exceeded");
    assert!(b["error"]["message"].as_str().unwrap().contains("2026-07-01"), "{b}");
    let (used, reserved, quota) = e.router.quota_snapshot(s).unwrap();
    assert_eq!((reserved, quota), (0, 600));
    assert!(used <= 600, "never over the quota: {used}");
    // The 90 % warning was raised.
    let mut warned = false;
    while let Ok(ev) = events.try_recv() {
        warned |= matches!(ev, switchboard::engine::router::RouterEvent::QuotaWarning { supplier, .. } if supplier == s);
    }
    assert!(warned);
    // On its wedding day a supplier is never refused for quota: the overage is recorded.
    let mut events = e.router.subscribe_events();
    for _ in 0..30 {
        let r = e.chat(&tw, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        assert_eq!(r.status(), 200);
        e.clock.advance(Duration::seconds(2));
    }
    assert!(e.router.quota_snapshot(w).unwrap().0 > 600, "overage recorded");
    // ... and alerted: once when it goes over, then at most once a minute with
    // the latest figures, not once per request.
    let mut exceeded = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let switchboard::engine::router::RouterEvent::QuotaExceeded { supplier, used, wedding_day, .. } = ev {
            assert_eq!(supplier, w);
            exceeded.push((used, wedding_day));
        }
    }
    assert!((1..=2).contains(&exceeded.len()), "{exceeded:?}");
    assert!(exceeded.iter().all(|&(used, wedding)| used > 600 && wedding), "{exceeded:?}");
}

#[tokio::test]
async fn near_its_quota_a_request_is_measured_with_the_tokenizer_not_its_length() {
    // Far from the quota a request reserves a cheap bound (its prompt's bytes);
    // near it, the tokenizer's count decides. This prompt is about 550 bytes
    // but about 120 tokens: with 300 tokens left it must still be served.
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 200; // ×1.5 in June = 300
    let e = env(cfg).await;
    let s = e.supplier("Near Quota Studio", Tier::Starter, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let prompt = "The ceremony starts at four; photos by the lake after. ".repeat(10);
    let r = e.chat(&t, "gpt-4o-mini", &prompt).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (used, reserved, quota) = e.router.quota_snapshot(s).unwrap();
    assert_eq!((reserved, quota), (0, 300));
    assert!(used > 0 && used <= quota, "{used}");
    // The next one does not fit any more, however it is counted.
    e.clock.advance(Duration::seconds(2));
    let r = e.chat(&t, "gpt-4o-mini", &prompt).await;
    assert_eq!(r.status(), 429);
    assert!(e.router.quota_snapshot(s).unwrap().0 <= quota);
}

#[tokio::test]
async fn sixty_four_concurrent_clients_cannot_overrun_the_quota() {
    let mut cfg = RouterConfig::default();
    cfg.quota.professional_tokens = 4_000; // 6,000 in June
    let e = Arc::new(env(cfg).await);
    let s = e.supplier("Race Studio", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (e, t) = (e.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for j in 0..6 {
                let r = e.chat(&t, "gpt-4o-mini", &format!("client {i} request {j}: write a short note")).await;
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => {}
                    s => panic!("unexpected status {s}"),
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert!(ok > 0);
    let (used, reserved, quota) = e.router.quota_snapshot(s).unwrap();
    assert_eq!(reserved, 0);
    // Reservations include max_tokens (50) plus the prompt, so no request can push past the quota.
    assert!(used <= quota, "used {used} > quota {quota}");
    let ledger: i64 = e.usage_rows(s).iter().filter(|r| r.2 == 0).map(|r| r.3).sum();
    assert_eq!(ledger as u64, used, "the ledger agrees with the counter");
}

#[tokio::test]
async fn a_california_wedding_is_protected_all_saturday_evening_although_utc_is_sunday() {
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 200; // ×1.5 in June = 300
    let e = env(cfg).await;
    let saturday = NaiveDate::from_ymd_opt(2026, 6, 13).unwrap();
    let la = supplier_in(&e, "Golden Gate Weddings", "America/Los_Angeles", saturday);
    let london = supplier_in(&e, "Thames Weddings", "Europe/London", saturday);
    let (tla, tlondon) = (e.token(la, false), e.token(london, false));
    // Sunday 03:00 UTC: Saturday 20:00 in California, Sunday 04:00 in London.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 14, 3, 0, 0).unwrap());
    let mut london_refused = false;
    for _ in 0..30 {
        let r = e.chat(&tla, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        assert_eq!(r.status(), 200, "the wedding day in California is served past the quota");
        let r = e.chat(&tlondon, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        london_refused |= r.status() == 429;
        e.clock.advance(Duration::seconds(2));
    }
    assert!(london_refused, "London's wedding day is over: its quota applies");
    assert!(e.router.quota_snapshot(la).unwrap().0 > 300, "overage recorded");
    assert!(e.router.quota_snapshot(london).unwrap().0 <= 300);
    // At local midnight in California (07:00 UTC) the protection ends.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 14, 7, 0, 0).unwrap());
    let r = e.chat(&tla, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
    assert_eq!(r.status(), 429);
}
