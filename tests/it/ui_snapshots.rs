//! Snapshot tests of every console view and form at 1280×800 and 1920×1080,
//! rendered by egui_kittest's wgpu renderer (Mesa's lavapipe on CI) and
//! compared with the PNGs in `tests/snapshots/ui/`, so that a layout
//! regression — a panel drawn over a table, a label cut off — fails the suite.
//!
//! The data are deterministic: the demo generator with a fixed seed writes
//! the database, and the console runs on a `ManualClock` at a fixed instant.
//! The tolerance (a per-pixel threshold and a small share of differing
//! pixels) absorbs the anti-aliasing noise of software rendering, not a
//! moved or hidden widget.
//!
//! Regenerate every image after an intended change of the UI with one command:
//!
//! ```sh
//! UPDATE_SNAPSHOTS=1 scripts/test -- --test it ui_snapshots::
//! ```
//!
//! (`UPDATE_SNAPSHOTS=force` rewrites even the images that still match.) A
//! failing run leaves `NAME.new.png` and `NAME.diff.png` next to the image.

use chrono::{DateTime, Utc};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::console::{self, LiveServices, ServiceOptions};
use switchboard::domain::{Clock, ManualClock, QuotaPolicy};
use switchboard::engine::demo::{DemoConfig, generate};
use switchboard::engine::keys::KeyService;
use switchboard::providers::{Providers, ProvidersConfig};
use switchboard::store::Store;
use switchboard::ui::{AppOptions, ConsoleApp, SaveDialog, View};
use switchboard::vault::Vault;

/// The instant every snapshot is taken at (a Monday in the peak season).
const NOW: &str = "2026-06-15T10:00:00Z";
const SIZES: [(u32, u32); 2] = [(1280, 800), (1920, 1080)];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW).unwrap().with_timezone(&Utc)
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    rt: tokio::runtime::Runtime,
    clock: ManualClock,
}

/// A database with the demo's suppliers, accounts, 90 days of usage and 30 days of health history.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("snapshots.db")).unwrap());
    let mut cfg = DemoConfig::new(24, 90, 7, now().date_naive());
    cfg.history_until = Some(now());
    generate(&store, &cfg, |_, _| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    World { _dir: dir, store, rt, clock: ManualClock::new(now()) }
}

fn harness(w: &World, view: View, size: (u32, u32)) -> Harness<'static, ConsoleApp> {
    let clock: Arc<dyn Clock> = Arc::new(w.clock.clone());
    let providers = Arc::new(Providers::new(ProvidersConfig::default()).unwrap());
    let keys = Arc::new(KeyService::new(w.store.clone(), Vault::demo_in_memory(), providers, clock.clone()));
    let opts = ServiceOptions { live: Some(LiveServices::keys_only(keys)), after_demo: None, ..Default::default() };
    let (handle, events) = console::spawn_with(w.rt.handle(), w.store.clone(), clock, QuotaPolicy::default(), Arc::new(|| {}), opts);
    let app = ConsoleApp::new(
        handle,
        events,
        AppOptions {
            db_label: "snapshots.db".into(),
            start_view: Some(view),
            save_dialog: SaveDialog::answering(None),
            ..Default::default()
        },
        None,
    );
    Harness::builder()
        .with_size(egui::vec2(size.0 as f32, size.1 as f32))
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app)
}

/// Everything the accessibility tree says, to notice when the screen stops changing.
fn screen(h: &Harness<'static, ConsoleApp>) -> Vec<String> {
    let out = std::cell::RefCell::new(Vec::new());
    let _ = h
        .query_all_by(|n| {
            let mut o = out.borrow_mut();
            o.extend(n.label());
            o.extend(n.value());
            false
        })
        .count();
    out.into_inner()
}

/// Steps until the screen has shown no spinner and not changed for a while.
fn settle(h: &mut Harness<'static, ConsoleApp>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut last, mut same) = (Vec::new(), 0);
    while same < 6 {
        h.step();
        let s = screen(h);
        let busy = s.iter().any(|l| l.starts_with("Loading") || l.ends_with('…') && l.contains("ing "));
        if s == last && !busy {
            same += 1;
        } else {
            same = 0;
            last = s;
        }
        assert!(Instant::now() < deadline, "{what} did not settle; on screen: {last:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn click(h: &mut Harness<'static, ConsoleApp>, label: &str) {
    h.get_by(|n| matches!(n.role(), Role::Button | Role::RadioButton) && n.label().as_deref() == Some(label)).click();
    h.step();
    h.step();
}

fn type_in(h: &mut Harness<'static, ConsoleApp>, label: &str, text: &str) {
    h.get_by(|n| n.role() == Role::TextInput && n.label().as_deref() == Some(label)).focus();
    h.step();
    h.get_by(|n| n.role() == Role::TextInput && n.label().as_deref() == Some(label)).type_text(text);
    h.step();
    h.step();
}

/// The import file the dialog's scene previews (a fixed path, so the picture shows the same path everywhere).
const IMPORT_SAMPLE: &str = "name,vendor_type,tier,mode,time_zone,weddings\n\
    Willow Promise Catering,caterer,professional,platform,Europe/London,2026-06-13;2026-07-04\n\
    Capture Moments Studio,photographer,starter,client,America/Los_Angeles,\n\
    ,florist,starter,platform,UTC,\n\
    Golden Hour Venue,venue,platinum,platform,UTC,\n\
    Blush Petal Florals,florist,scale,platform,Europe/Paris,2026-09-12\n\
    Sugar Bloom Cakes,baker,starter,platform,UTC,2026-06-1\n";

fn import_preview(h: &mut Harness<'static, ConsoleApp>) {
    let path = std::env::temp_dir().join("switchboard-snapshot-import.csv");
    std::fs::write(&path, IMPORT_SAMPLE).unwrap();
    click(h, "Import CSV…");
    let field = |n: &egui_kittest::kittest::AccessKitNode<'_>| n.role() == Role::TextInput && n.label().as_deref() == Some("File");
    h.get_by(field).focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by(field).type_text(&path.display().to_string());
    h.step();
    click(h, "Preview");
}

fn first_supplier_row(h: &mut Harness<'static, ConsoleApp>) {
    h.query_all_by(|n| n.role() == Role::Row && n.label().is_some_and(|l| l.starts_with("Supplier "))).next().unwrap().click();
    h.step();
}

/// One screen: a view, and what to do on it before the picture.
struct Scene {
    name: &'static str,
    view: View,
    act: fn(&mut Harness<'static, ConsoleApp>),
}

fn nothing(_: &mut Harness<'static, ConsoleApp>) {}

const SCENES: &[Scene] = &[
    Scene { name: "overview", view: View::Overview, act: nothing },
    Scene { name: "suppliers", view: View::Suppliers, act: nothing },
    Scene { name: "suppliers_detail", view: View::Suppliers, act: first_supplier_row },
    Scene {
        name: "suppliers_edit",
        view: View::Suppliers,
        act: |h| {
            first_supplier_row(h);
            settle(h, "the detail");
            click(h, "Edit");
        },
    },
    Scene { name: "suppliers_add", view: View::Suppliers, act: |h| click(h, "Add supplier") },
    Scene { name: "suppliers_import", view: View::Suppliers, act: import_preview },
    Scene { name: "keys", view: View::Keys, act: nothing },
    Scene {
        name: "keys_add_picker",
        view: View::Keys,
        act: |h| {
            click(h, "Add key…");
            click(h, "A supplier");
            type_in(h, "Owner", "photo");
        },
    },
    Scene { name: "keys_token_picker", view: View::Keys, act: |h| type_in(h, "Token for", "sc") },
    Scene { name: "quotas", view: View::Quotas, act: nothing },
    Scene { name: "health", view: View::Health, act: nothing },
    Scene { name: "migrations", view: View::Migrations, act: nothing },
    Scene {
        name: "migrations_start",
        view: View::Migrations,
        act: |h| {
            click(h, "Start a migration…");
            type_in(h, "Supplier", "venue");
            h.key_press(egui::Key::Enter);
            h.step();
        },
    },
    Scene { name: "usage", view: View::Usage, act: nothing },
    Scene { name: "usage_export", view: View::Usage, act: |h| click(h, "Export CSV…") },
    Scene { name: "alerts", view: View::Alerts, act: nothing },
    Scene { name: "requests", view: View::Requests, act: nothing },
    Scene { name: "audit", view: View::Audit, act: nothing },
];

fn options(size: (u32, u32)) -> SnapshotOptions {
    // Lavapipe's anti-aliasing differs by a shade here and there between runs
    // and machines; a hidden label or a moved panel changes thousands of pixels.
    let pixels = (size.0 * size.1) as usize;
    SnapshotOptions::new().output_path("tests/snapshots/ui").threshold(2.0).max_failed_pixels(pixels / 4000)
}

#[test]
fn every_view_and_form_matches_its_snapshot_at_two_window_sizes() {
    let w = world();
    let mut failures = Vec::new();
    for size in SIZES {
        for s in SCENES {
            let mut h = harness(&w, s.view, size);
            settle(&mut h, s.name);
            (s.act)(&mut h);
            settle(&mut h, s.name);
            let name = format!("{}_{}x{}", s.name, size.0, size.1);
            if let Err(e) = h.try_snapshot_options(&name, &options(size)) {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} snapshots differ:\n{}", failures.len(), failures.join("\n"));
}
