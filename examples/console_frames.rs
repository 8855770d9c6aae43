//! Frame-time benchmark of the desktop console: builds the real app (console
//! service on a tokio runtime, real SQLite demo database) and drives frames of
//! the Usage & cost and Suppliers views through egui_kittest, moving the
//! pointer and scrolling the table between frames. Reports launch-to-first-frame
//! and p50/p95/max frame time (egui's CPU time per frame: logic, layout and
//! shapes; GPU tessellation and painting are not included).
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-console cargo run --release --example console_frames -- \
//!     --suppliers 1000 --days 365 --db /tmp/switchboard-bench.db --frames 400
//! ```
//! The database is generated on the first run and reused afterwards.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::console;
use switchboard::domain::{QuotaPolicy, SystemClock};
use switchboard::engine::demo::{DemoConfig, generate};
use switchboard::store::Store;
use switchboard::ui::{AppOptions, ConsoleApp, View};

struct Args {
    suppliers: u32,
    days: u32,
    db: std::path::PathBuf,
    frames: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args { suppliers: 5_000, days: 365, db: std::env::temp_dir().join("switchboard-bench.db"), frames: 400 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--suppliers" => a.suppliers = v.parse()?,
            "--days" => a.days = v.parse()?,
            "--db" => a.db = v.into(),
            "--frames" => a.frames = v.parse()?,
            _ => anyhow::bail!("unknown option {flag}; use --suppliers N --days D --db PATH --frames N"),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let store = Arc::new(Store::open(&a.db)?);
    if store.count_suppliers()? == 0 {
        let started = Instant::now();
        let cfg = DemoConfig::new(a.suppliers, a.days, 7, switchboard::domain::Clock::now(&switchboard::domain::SystemClock).date_naive());
        let s = generate(&store, &cfg, switchboard::engine::demo::once_per_stage(|stage| eprintln!("writing {stage}…")))?;
        println!("generated {} suppliers, {} usage events in {:.1} s", s.suppliers, s.usage_events, started.elapsed().as_secs_f64());
    }
    println!("database: {} ({} suppliers)", a.db.display(), store.count_suppliers()?);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for view in [View::Usage, View::Suppliers] {
        let launched = Instant::now();
        let (handle, events) = console::spawn(rt.handle(), store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
        let app =
            ConsoleApp::new(handle, events, AppOptions { db_label: "bench".into(), start_view: Some(view), ..Default::default() }, None);
        let mut h = Harness::builder()
            .with_size(egui::vec2(1360.0, 860.0))
            .with_context_setup(switchboard::ui::theme::install)
            .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app);
        h.step();
        let first_frame = launched.elapsed();
        // Wait for the view's data (the service answers on the runtime).
        let deadline = Instant::now() + Duration::from_secs(120);
        while h.query_all_by_label_contains("Loading").next().is_some() {
            anyhow::ensure!(Instant::now() < deadline, "{} did not load within 2 minutes", view.label());
            std::thread::sleep(Duration::from_millis(10));
            h.step();
        }
        let loaded = launched.elapsed();
        for _ in 0..20 {
            h.step();
        }
        let mut times = Vec::with_capacity(a.frames);
        for i in 0..a.frames {
            // Sweep the pointer over the view (hover tooltips on charts and rows), scroll now and then.
            let x = 220.0 + (i * 37 % 1100) as f32;
            let y = 120.0 + (i * 53 % 700) as f32;
            h.event(egui::Event::PointerMoved(egui::pos2(x, y)));
            if i % 10 == 5 {
                h.event(egui::Event::MouseWheel {
                    unit: egui::MouseWheelUnit::Point,
                    delta: egui::vec2(0.0, if i % 40 < 20 { -120.0 } else { 120.0 }),
                    phase: egui::TouchPhase::Move,
                    modifiers: egui::Modifiers::NONE,
                    source: egui::MouseWheelSource::Wheel,
                });
            }
            let t = Instant::now();
            h.step();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<14} first frame {:>6.1} ms · data shown {:>7.1} ms · {} frames: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            view.label(),
            first_frame.as_secs_f64() * 1000.0,
            loaded.as_secs_f64() * 1000.0,
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            times.last().copied().unwrap_or(0.0)
        );
    }
    Ok(())
}
