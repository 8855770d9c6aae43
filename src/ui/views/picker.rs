//! The type-ahead picker: one widget for every place where a supplier or a
//! provider account is chosen (Start a migration, Add key's owner, Issue
//! token, Quotas). It matches what is typed against the name, the vendor type,
//! the tier, the AI mode and the ID (`12` or `#12`), every word of the query
//! somewhere; the best matches are listed under the field. Keyboard: ↓/↑ move,
//! Enter picks, Escape closes; the mouse picks by click. Candidates come from
//! the console's [`Directory`] snapshot (built once per snapshot into
//! [`Picks`]), so typing filters memory, never the database.

use crate::console::Directory;
use crate::domain::{AccountOwner, SupplierId};
use crate::ui::theme;
use egui::{Key, RichText, Ui};
use std::sync::Arc;

/// How many matches the list shows at once.
pub const SHOWN: usize = 8;

/// One candidate: its key (a supplier's or an account's ID), what it is
/// called, and a line of detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickItem {
    pub key: i64,
    pub title: String,
    pub detail: String,
    /// Lower-case words the query is matched against.
    haystack: String,
    title_lower: String,
}

impl PickItem {
    /// `terms` are extra words a query may match (vendor type, tier, owner…).
    pub fn new(key: i64, title: impl Into<String>, detail: impl Into<String>, terms: &[&str]) -> Self {
        let title = title.into();
        let title_lower = title.to_lowercase();
        let mut haystack = format!("{title_lower} #{key}");
        for t in terms {
            haystack.push(' ');
            haystack.push_str(&t.to_lowercase());
        }
        PickItem { key, title, detail: detail.into(), haystack, title_lower }
    }
}

/// The candidates of the console's pickers, rebuilt when a [`Directory`] arrives.
#[derive(Debug, Clone, Default)]
pub struct Picks {
    pub directory: Arc<Directory>,
    pub suppliers: Arc<Vec<PickItem>>,
    pub accounts: Arc<Vec<PickItem>>,
}

impl Picks {
    pub fn new(directory: Arc<Directory>) -> Self {
        let suppliers = directory
            .suppliers
            .iter()
            .map(|s| {
                let detail = format!("{} · {} · {} AI · #{}", s.vendor_type, s.tier, s.ai_mode, s.id.0);
                PickItem::new(s.id.0, &s.name, detail, &[s.vendor_type.as_str(), s.tier.as_str(), s.ai_mode.as_str()])
            })
            .collect();
        let accounts = directory
            .accounts
            .iter()
            .map(|a| {
                let detail = format!("{} · {} · #{}", a.provider.display_name(), a.owner_name, a.id.0);
                PickItem::new(a.id.0, &a.label, detail, &[a.provider.display_name(), &a.owner_name])
            })
            .collect();
        Picks { directory, suppliers: Arc::new(suppliers), accounts: Arc::new(accounts) }
    }

    /// A supplier's name, when the directory knows it.
    pub fn supplier_name(&self, id: SupplierId) -> Option<&str> {
        self.directory.supplier(id).map(|s| s.name.as_str())
    }

    /// The accounts of one owner, as candidates.
    pub fn accounts_of(&self, owner: AccountOwner) -> Vec<PickItem> {
        let ids: Vec<i64> = self.directory.accounts.iter().filter(|a| a.owner == owner).map(|a| a.id.0).collect();
        self.accounts.iter().filter(|i| ids.contains(&i.key)).cloned().collect()
    }
}

/// The items that match `query`, best first: an exact ID, then names that
/// start with the query, then names with a word that starts with it, then the
/// rest; every word of the query must appear somewhere. An empty query lists
/// everything in order.
pub fn rank<'a>(items: &'a [PickItem], query: &str) -> Vec<&'a PickItem> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return items.iter().collect();
    }
    let words: Vec<&str> = q.split_whitespace().collect();
    let id = q.trim_start_matches('#').parse::<i64>().ok();
    let mut hits: Vec<(u8, &PickItem)> = items
        .iter()
        .filter_map(|it| {
            if id == Some(it.key) {
                return Some((0, it));
            }
            if !words.iter().all(|w| it.haystack.contains(w.trim_start_matches('#'))) {
                return None;
            }
            let score = if it.title_lower == q {
                1
            } else if it.title_lower.starts_with(&q) {
                2
            } else if it.title_lower.split_whitespace().any(|w| w.starts_with(words[0])) {
                3
            } else {
                4
            };
            Some((score, it))
        })
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.title_lower.cmp(&b.1.title_lower)).then(a.1.key.cmp(&b.1.key)));
    hits.into_iter().map(|(_, it)| it).collect()
}

/// A picker's state: what is typed, what is chosen, the highlighted match.
#[derive(Debug, Clone, Default)]
pub struct Picker {
    pub text: String,
    chosen: Option<i64>,
    highlight: usize,
    open: bool,
    /// The pointer was over the list last frame (a click there keeps it open).
    list_hovered: bool,
}

/// What happened to a picker this frame.
pub struct Picked {
    /// The text field.
    pub response: egui::Response,
    /// A candidate was chosen this frame (by click or Enter).
    pub chosen: Option<i64>,
}

impl Picker {
    /// A picker with `key` chosen and its `title` in the field.
    pub fn with(key: i64, title: impl Into<String>) -> Self {
        Picker { text: title.into(), chosen: Some(key), ..Default::default() }
    }

    /// The chosen candidate's key, if the field still shows it.
    pub fn chosen(&self) -> Option<i64> {
        self.chosen
    }

    pub fn choose(&mut self, key: i64, title: &str) {
        self.chosen = Some(key);
        self.text = title.to_string();
        self.open = false;
        self.highlight = 0;
    }

    pub fn clear(&mut self) {
        *self = Picker::default();
    }

    /// The chosen key, or the one candidate the typed text can only mean (a
    /// single match, or an exact name or ID); otherwise a sentence that says
    /// what to do. `noun` is "supplier" or "account".
    pub fn resolve(&mut self, items: &[PickItem], noun: &str) -> Result<i64, String> {
        if let Some(k) = self.chosen {
            return Ok(k);
        }
        let typed = self.text.trim();
        if typed.is_empty() {
            let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            return Err(format!("Choose {article} {noun}: type part of its name and pick it from the list"));
        }
        let hits = rank(items, typed);
        let exact: Vec<&&PickItem> = hits.iter().filter(|h| h.title.eq_ignore_ascii_case(typed)).collect();
        let one = match (hits.as_slice(), exact.as_slice()) {
            ([only], _) => Some((only.key, only.title.clone())),
            (_, [only]) => Some((only.key, only.title.clone())),
            ([first, ..], _) if typed.trim_start_matches('#').parse::<i64>().ok() == Some(first.key) => {
                Some((first.key, first.title.clone()))
            }
            _ => None,
        };
        match one {
            Some((k, title)) => {
                self.choose(k, &title);
                Ok(k)
            }
            None if hits.is_empty() => Err(format!("No {noun} matches '{typed}'; check the spelling, or type part of its name or its ID")),
            None => Err(format!("'{typed}' matches {} {noun}s; pick one from the list", hits.len())),
        }
    }

    /// Draws the field (labelled `label`, for screen readers and tests) and,
    /// while it is being used, the matching candidates under it.
    pub fn show(&mut self, ui: &mut Ui, label: &str, hint: &str, width: f32, items: &[PickItem]) -> Picked {
        let l = ui.label(label);
        let id = l.id.with("picker");
        let te = egui::TextEdit::singleline(&mut self.text).hint_text(hint).desired_width(width).id(id.with("field"));
        let response = ui.add(te).labelled_by(l.id);
        if response.changed() {
            self.chosen = None;
            self.open = true;
            self.highlight = 0;
        }
        if response.gained_focus() {
            self.open = true;
        }
        let focused = response.has_focus();
        // A single-line field gives up its focus on Enter: Enter picks the highlighted match.
        if self.open && response.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
            let hits = rank(items, &self.text);
            if let Some(it) = hits.get(self.highlight.min(hits.len().min(SHOWN).saturating_sub(1))) {
                let (k, t) = (it.key, it.title.clone());
                self.choose(k, &t);
                return Picked { response, chosen: Some(k) };
            }
        }
        if !focused && !self.list_hovered {
            self.open = false;
        }
        if !self.open {
            self.list_hovered = false;
            return Picked { response, chosen: None };
        }
        let hits = rank(items, &self.text);
        let shown = hits.len().min(SHOWN);
        if focused {
            let (down, up, enter, esc) = ui.input_mut(|i| {
                (
                    i.consume_key(egui::Modifiers::NONE, Key::ArrowDown),
                    i.consume_key(egui::Modifiers::NONE, Key::ArrowUp),
                    i.key_pressed(Key::Enter),
                    i.consume_key(egui::Modifiers::NONE, Key::Escape),
                )
            });
            if down && shown > 0 {
                self.highlight = (self.highlight + 1).min(shown - 1);
            }
            if up {
                self.highlight = self.highlight.saturating_sub(1);
            }
            if esc {
                self.open = false;
                self.list_hovered = false;
                return Picked { response, chosen: None };
            }
            if enter && let Some(it) = hits.get(self.highlight.min(shown.saturating_sub(1))) {
                let (k, t) = (it.key, it.title.clone());
                self.choose(k, &t);
                return Picked { response, chosen: Some(k) };
            }
        }
        let p = *theme::palette(ui);
        let mut clicked: Option<(i64, String)> = None;
        let area = egui::Area::new(id.with("list"))
            .order(egui::Order::Foreground)
            .fixed_pos(response.rect.left_bottom() + egui::vec2(0.0, 2.0))
            .show(ui.ctx(), |ui| {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    let w = width.max(320.0);
                    ui.set_width(w);
                    if hits.is_empty() {
                        ui.label(RichText::new(format!("Nothing matches '{}'", self.text.trim())).color(p.muted));
                    }
                    for (i, it) in hits.iter().take(SHOWN).enumerate() {
                        let text = format!("{}  —  {}", it.title, it.detail);
                        let b = egui::Button::selectable(i == self.highlight, text).truncate();
                        let r = ui.add_sized([w, theme::ROW_HEIGHT], b);
                        if r.clicked() {
                            clicked = Some((it.key, it.title.clone()));
                        }
                        if r.hovered() {
                            self.highlight = i;
                        }
                    }
                    if hits.len() > SHOWN {
                        ui.label(RichText::new(format!("and {} more: keep typing", hits.len() - SHOWN)).small().color(p.muted));
                    }
                });
            });
        self.list_hovered = area.response.contains_pointer();
        if let Some((k, t)) = clicked {
            self.choose(k, &t);
            self.list_hovered = false;
            return Picked { response, chosen: Some(k) };
        }
        Picked { response, chosen: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<PickItem> {
        vec![
            PickItem::new(12, "Willow Promise Catering", "", &["caterer", "professional", "platform"]),
            PickItem::new(3, "Capture Moments", "", &["photographer", "starter", "client"]),
            PickItem::new(7, "Promise Florals", "", &["florist", "scale", "platform"]),
            PickItem::new(120, "Amber Venue", "", &["venue", "professional", "platform"]),
        ]
    }

    fn keys(items: &[PickItem], q: &str) -> Vec<i64> {
        rank(items, q).iter().map(|i| i.key).collect()
    }

    #[test]
    fn ranks_ids_then_name_prefixes_then_word_prefixes_then_the_rest() {
        let it = items();
        assert_eq!(keys(&it, "12"), vec![12, 120], "the exact ID first, then IDs that contain it");
        assert_eq!(keys(&it, "#12"), vec![12, 120]);
        assert_eq!(keys(&it, "promise"), vec![7, 12], "a name starting with it before a word in the middle");
        assert_eq!(keys(&it, "prom cater"), vec![12], "every word must match");
        assert_eq!(keys(&it, "FLORIST"), vec![7], "vendor type, case-insensitive");
        assert_eq!(keys(&it, "professional"), vec![120, 12], "tier; ties by name");
        assert_eq!(keys(&it, "zzz"), Vec::<i64>::new());
        assert_eq!(keys(&it, ""), vec![12, 3, 7, 120], "an empty query lists all, in the given order");
    }

    #[test]
    fn resolve_takes_the_one_meaning_or_says_what_to_do() {
        let it = items();
        let mut p = Picker { text: "capture".into(), ..Default::default() };
        assert_eq!(p.resolve(&it, "supplier"), Ok(3));
        assert_eq!(p.text, "Capture Moments");
        let mut p = Picker { text: "promise".into(), ..Default::default() };
        assert!(p.resolve(&it, "supplier").unwrap_err().contains("matches 2 suppliers"));
        let mut p = Picker { text: "Promise Florals".into(), ..Default::default() };
        assert_eq!(p.resolve(&it, "supplier"), Ok(7));
        let mut p = Picker { text: "12".into(), ..Default::default() };
        assert_eq!(p.resolve(&it, "supplier"), Ok(12), "an exact ID wins over IDs that contain it");
        let mut p = Picker { text: "nobody".into(), ..Default::default() };
        assert!(p.resolve(&it, "supplier").unwrap_err().contains("No supplier matches 'nobody'"));
        let mut p = Picker::default();
        assert!(p.resolve(&it, "account").unwrap_err().contains("Choose an account"));
        let mut p = Picker::with(3, "Capture Moments");
        assert_eq!(p.resolve(&it, "supplier"), Ok(3));
    }
}
