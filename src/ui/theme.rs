//! The console's design tokens — the ONE place for colours, spacing, sizes and
//! type. Views never write a colour or a margin literal; they ask this module.
//! Light and dark palettes follow the operating system's preference.

use egui::{Color32, CornerRadius, FontId, Margin, Stroke, TextStyle, Theme, Ui};

/// Spacing scale (points).
pub const GAP_XS: f32 = 4.0;
pub const GAP_S: f32 = 8.0;
pub const GAP_M: f32 = 12.0;
pub const GAP_L: f32 = 20.0;
/// Height of one table row (without item spacing).
pub const ROW_HEIGHT: f32 = 22.0;
/// Width of the navigation rail.
pub const NAV_WIDTH: f32 = 184.0;
/// Width of the supplier detail panel.
pub const DETAIL_WIDTH: f32 = 380.0;
pub const CARD_RADIUS: u8 = 8;
pub const CHART_HEIGHT: f32 = 240.0;

/// Colours for one theme.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub accent: Color32,
    pub ok: Color32,
    pub warn: Color32,
    pub danger: Color32,
    pub muted: Color32,
    pub card: Color32,
    pub card_stroke: Color32,
    pub nav: Color32,
    pub stripe: Color32,
    /// Seasonal shading: peak months.
    pub peak: Color32,
    pub off_peak: Color32,
    /// Distinct series colours for charts, in order.
    pub series: [Color32; 9],
}

const LIGHT: Palette = Palette {
    accent: Color32::from_rgb(0x5b, 0x4b, 0xd6),
    ok: Color32::from_rgb(0x1f, 0x8a, 0x4c),
    warn: Color32::from_rgb(0xb8, 0x6e, 0x00),
    danger: Color32::from_rgb(0xc9, 0x2a, 0x2a),
    muted: Color32::from_rgb(0x6b, 0x6f, 0x7a),
    card: Color32::from_rgb(0xff, 0xff, 0xff),
    card_stroke: Color32::from_rgb(0xe2, 0xe4, 0xea),
    nav: Color32::from_rgb(0xf1, 0xf2, 0xf6),
    stripe: Color32::from_rgb(0xf6, 0xf7, 0xfa),
    peak: Color32::from_rgb(0xd9, 0x5d, 0x8c),
    off_peak: Color32::from_rgb(0x8e, 0x9a, 0xb8),
    series: [
        Color32::from_rgb(0x5b, 0x4b, 0xd6),
        Color32::from_rgb(0xe0, 0x6c, 0x3b),
        Color32::from_rgb(0x1f, 0x9e, 0x89),
        Color32::from_rgb(0xd9, 0x5d, 0x8c),
        Color32::from_rgb(0x3b, 0x82, 0xc4),
        Color32::from_rgb(0xb8, 0x9b, 0x1c),
        Color32::from_rgb(0x7a, 0x4e, 0x9e),
        Color32::from_rgb(0x4d, 0x9a, 0x3a),
        Color32::from_rgb(0x8a, 0x8f, 0x99),
    ],
};

const DARK: Palette = Palette {
    accent: Color32::from_rgb(0x9d, 0x92, 0xff),
    ok: Color32::from_rgb(0x4c, 0xc3, 0x7e),
    warn: Color32::from_rgb(0xf0, 0xa8, 0x3c),
    danger: Color32::from_rgb(0xf2, 0x6b, 0x6b),
    muted: Color32::from_rgb(0x9a, 0x9e, 0xaa),
    card: Color32::from_rgb(0x22, 0x24, 0x2b),
    card_stroke: Color32::from_rgb(0x33, 0x36, 0x40),
    nav: Color32::from_rgb(0x18, 0x19, 0x1e),
    stripe: Color32::from_rgb(0x26, 0x28, 0x30),
    peak: Color32::from_rgb(0xf0, 0x7f, 0xab),
    off_peak: Color32::from_rgb(0x7c, 0x88, 0xa6),
    series: [
        Color32::from_rgb(0x9d, 0x92, 0xff),
        Color32::from_rgb(0xf2, 0x8c, 0x5c),
        Color32::from_rgb(0x3c, 0xc8, 0xaf),
        Color32::from_rgb(0xf0, 0x7f, 0xab),
        Color32::from_rgb(0x5f, 0xad, 0xf0),
        Color32::from_rgb(0xe0, 0xc4, 0x4a),
        Color32::from_rgb(0xb9, 0x8c, 0xe0),
        Color32::from_rgb(0x7c, 0xc8, 0x68),
        Color32::from_rgb(0xa0, 0xa5, 0xb0),
    ],
};

/// The palette for the theme `ui` is drawn in.
pub fn palette(ui: &Ui) -> &'static Palette {
    if ui.visuals().dark_mode { &DARK } else { &LIGHT }
}

/// Series colour number `i` (wrapping).
pub fn series_color(ui: &Ui, i: usize) -> Color32 {
    let p = palette(ui);
    p.series[i % p.series.len()]
}

/// Installs both themes' styles; egui picks the one the OS prefers.
pub fn install(ctx: &egui::Context) {
    ctx.options_mut(|o| o.theme_preference = egui::ThemePreference::System);
    for (theme, pal) in [(Theme::Light, &LIGHT), (Theme::Dark, &DARK)] {
        ctx.style_mut_of(theme, |style| {
            style.text_styles.insert(TextStyle::Heading, FontId::proportional(20.0));
            style.text_styles.insert(TextStyle::Body, FontId::proportional(13.5));
            style.text_styles.insert(TextStyle::Button, FontId::proportional(13.5));
            style.text_styles.insert(TextStyle::Small, FontId::proportional(11.0));
            style.text_styles.insert(TextStyle::Monospace, FontId::monospace(12.5));
            style.spacing.item_spacing = egui::vec2(GAP_S, 6.0);
            style.spacing.button_padding = egui::vec2(10.0, 4.0);
            style.spacing.interact_size.y = ROW_HEIGHT;
            let v = &mut style.visuals;
            v.selection.bg_fill = pal.accent.gamma_multiply(0.35);
            v.selection.stroke = Stroke::new(1.0, pal.accent);
            v.hyperlink_color = pal.accent;
            v.warn_fg_color = pal.warn;
            v.error_fg_color = pal.danger;
            v.window_corner_radius = CornerRadius::same(CARD_RADIUS);
            v.widgets.hovered.corner_radius = CornerRadius::same(5);
            v.widgets.inactive.corner_radius = CornerRadius::same(5);
            v.widgets.active.corner_radius = CornerRadius::same(5);
            v.striped = true;
        });
    }
}

/// Big-number text.
pub fn metric_font() -> FontId {
    FontId::proportional(24.0)
}

/// A framed card that groups one piece of a view.
pub fn card(ui: &Ui) -> egui::Frame {
    let p = palette(ui);
    egui::Frame::new()
        .fill(p.card)
        .stroke(Stroke::new(1.0, p.card_stroke))
        .corner_radius(CornerRadius::same(CARD_RADIUS))
        .inner_margin(Margin::same(GAP_M as i8))
}

/// Colour for a quota percentage: ok below the warning, warn from 90 %, danger over 100 %.
pub fn quota_color(ui: &Ui, percent: f64) -> Color32 {
    let p = palette(ui);
    if percent >= 100.0 {
        p.danger
    } else if percent >= 90.0 {
        p.warn
    } else if percent >= 75.0 {
        p.warn.gamma_multiply(0.8)
    } else {
        p.ok
    }
}
