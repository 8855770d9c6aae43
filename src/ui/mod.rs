//! The desktop console (eframe/egui), an edge. It never touches SQLite, the
//! keychain or the network: it sends [`ConsoleCommand`](crate::console::ConsoleCommand)s
//! to the console service on the tokio runtime (owned by `main`, see
//! `cli::run_console`) and renders the snapshots and events that come back.
//!
//! - [`app`]: the eframe `App` — drains events in `logic`, lays out the
//!   navigation and the current view in `ui`, persists the UI state.
//! - [`theme`]: the design tokens (colours, spacing, type), light and dark.
//! - `views`: one thin module per view, plus shared chart and table helpers.
//!
//! Layer rule: `ui` imports only [`crate::console`] (the protocol and the view
//! snapshots) and [`crate::domain`], never `store`, `engine`, `providers`,
//! `vault`, `sim` or `gateway`. Views tell time by the console's injected
//! clock ([`ConsoleHandle::now`](crate::console::ConsoleHandle::now)).

pub mod app;
pub mod theme;
mod toasts;
pub mod views;

pub use app::{AppOptions, ConsoleApp};
pub use views::View;
pub use views::export::{SaveDialog, SaveRequest};

use crate::console::{ConsoleEvents, ConsoleHandle, Repaint};
use std::sync::{Arc, OnceLock};

static LAUNCH: OnceLock<std::time::Instant> = OnceLock::new();

/// Records the process's launch time (call first thing in `main`): the first
/// frame logs the time from launch to first frame at `info` level.
pub fn mark_launch() {
    let _ = LAUNCH.set(std::time::Instant::now());
}

/// Milliseconds since [`mark_launch`], if it was called.
pub fn since_launch_ms() -> Option<f64> {
    LAUNCH.get().map(|t| t.elapsed().as_secs_f64() * 1000.0)
}

/// Lets the runtime wake the UI before the window (and its egui context) exists:
/// the service is started first, the context is filled in when eframe creates it.
#[derive(Clone, Default)]
pub struct RepaintSlot(Arc<OnceLock<egui::Context>>);

impl RepaintSlot {
    /// The callback handed to the console service.
    pub fn callback(&self) -> Repaint {
        let slot = self.0.clone();
        Arc::new(move || {
            if let Some(ctx) = slot.get() {
                ctx.request_repaint();
            }
        })
    }

    pub fn set(&self, ctx: &egui::Context) {
        let _ = self.0.set(ctx.clone());
    }
}

/// Everything `run` needs: the two ends of the console service and what to show first.
pub struct RunOptions {
    pub handle: ConsoleHandle,
    pub events: ConsoleEvents,
    pub repaint: RepaintSlot,
    pub app: AppOptions,
}

/// The window's icon (the one the `.deb` installs into the icon theme).
fn window_icon() -> egui::IconData {
    eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icons/switchboard-256.png")).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the window icon could not be decoded");
        egui::IconData::default()
    })
}

/// Opens the console window on the calling (main) thread and returns when it is closed.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(format!("Switchboard — {}", opts.app.db_label))
            .with_inner_size([1360.0, 860.0])
            .with_min_inner_size([960.0, 600.0])
            // The desktop entry's StartupWMClass and the icon theme's name.
            .with_app_id("switchboard")
            .with_icon(window_icon()),
        persist_window: true,
        ..Default::default()
    };
    let RunOptions { handle, events, repaint, app } = opts;
    eframe::run_native(
        "switchboard",
        native,
        Box::new(move |cc| {
            repaint.set(&cc.egui_ctx);
            theme::install(&cc.egui_ctx);
            Ok(Box::new(ConsoleApp::new(handle, events, app, cc.storage)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the console window could not open: {e}. Is a display available (DISPLAY or WAYLAND_DISPLAY)?"))
}
