//! The theme file format: the vocabulary a theme speaks ([`Slot`]s, the [`Element`]s
//! with a style of their own and their built-in styles) and the reader that turns one
//! theme file into a [`ThemeSpec`], a theme before its `base` is applied. Every problem
//! in the file is collected with its line, column and key (see [`super::error`]).

use std::fmt;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::BorderType;
use toml::de::{DeTable, DeValue};

use super::error::{did_you_mean, escape_key, quoted, unknown_hint, Problems, ThemeError};
use crate::toml_spans::{self, Value};

/// Defines a fieldless enum whose variants are named by fixed TOML keys.
macro_rules! keyed_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[doc = $doc:literal])* $variant:ident => $key:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[doc = $doc])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();

            /// The key used in theme files.
            pub fn key(self) -> &'static str {
                match self {
                    $($name::$variant => $key,)+
                }
            }

            /// The variant named by a theme-file key (exact match).
            pub fn from_key(key: &str) -> Option<Self> {
                match key {
                    $($key => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Position in [`Self::ALL`], to index per-variant arrays.
            pub(super) fn index(self) -> usize {
                self as usize
            }

            /// Every key, in declaration order.
            pub(super) fn keys() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.key()).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.key())
            }
        }
    };
}

keyed_enum! {
    /// A semantic colour slot (`[slots]` in a theme file).
    pub enum Slot {
        /// Body text.
        Fg => "fg",
        /// Screen background.
        Bg => "bg",
        /// Key hints, table headers, things that want attention.
        Accent => "accent",
        /// Secondary text.
        Muted => "muted",
        /// Succeeded VMs and checks.
        Success => "success",
        /// Warnings.
        Warning => "warning",
        /// Failures.
        Error => "error",
        /// Informational text.
        Info => "info",
        /// Background of the selected row.
        Highlight => "highlight",
        /// Text of the selected row.
        HighlightFg => "highlight_fg",
        /// Pane borders.
        Border => "border",
        /// Border of the focused pane.
        BorderFocused => "border_focused",
        /// Pane titles and the header.
        Title => "title",
        /// The LIVE mode badge.
        ModeLive => "mode_live",
        /// The DRY-RUN mode badge.
        ModeDryRun => "mode_dry_run",
        /// The REHEARSAL mode badge.
        ModeRehearsal => "mode_rehearsal",
        /// Progress bar, filled part.
        Gauge => "gauge",
        /// Progress bar, empty part.
        GaugeBg => "gauge_bg",
        /// Text on coloured badges.
        BadgeFg => "badge_fg",
    }
}

keyed_enum! {
    /// A UI element with its own style (`[widgets.<name>]` in a theme file). (Not a
    /// ratatui `Widget`: one widget may draw several elements, e.g. a table's header,
    /// rows and selected row.)
    pub enum Element {
        /// The whole screen, under everything else.
        Screen => "screen",
        /// Top bar (plan, context, mode).
        Header => "header",
        /// Bottom bar of key hints.
        Footer => "footer",
        /// Key letters inside the footer.
        KeyHint => "key_hint",
        /// Pane titles.
        Title => "title",
        /// Pane borders.
        Border => "border",
        /// Border of the focused pane.
        BorderFocused => "border_focused",
        /// Column headers of tables.
        TableHeader => "table_header",
        /// Table rows.
        TableRow => "table_row",
        /// The selected table row.
        TableSelected => "table_selected",
        /// Detail pane of the selected VM.
        Detail => "detail",
        /// Log pane lines.
        Log => "log",
        /// Info log lines.
        LogInfo => "log_info",
        /// Warning log lines.
        LogWarn => "log_warn",
        /// Error log lines.
        LogError => "log_error",
        /// Confirmation and message pop-ups.
        Popup => "popup",
        /// The `?` help overlay.
        Help => "help",
        /// The `:` command line.
        CommandLine => "command_line",
        /// Progress bars.
        Gauge => "gauge",
        /// Warning banner.
        Banner => "banner",
        /// LIVE badge.
        ModeLive => "mode_live",
        /// DRY-RUN badge.
        ModeDryRun => "mode_dry_run",
        /// REHEARSAL badge.
        ModeRehearsal => "mode_rehearsal",
        /// A finished VM or check.
        StatusOk => "status_ok",
        /// A failed VM or check.
        StatusFail => "status_fail",
        /// A VM not started yet.
        StatusPending => "status_pending",
        /// A VM in progress.
        StatusRunning => "status_running",
    }
}

impl Element {
    /// The built-in style of this element, in terms of slots (the widget table of
    /// `docs/themes.md`).
    pub(super) fn default_patch(self) -> StylePatch {
        use Slot as S;
        let (fg, bg, bold) = match self {
            Element::Screen => (S::Fg, Some(S::Bg), false),
            Element::Header => (S::Title, None, true),
            Element::Footer => (S::Muted, None, false),
            Element::KeyHint => (S::Accent, None, true),
            Element::Title => (S::Title, None, true),
            Element::Border => (S::Border, None, false),
            Element::BorderFocused => (S::BorderFocused, None, false),
            Element::TableHeader => (S::Accent, None, true),
            Element::TableRow => (S::Fg, None, false),
            Element::TableSelected => (S::HighlightFg, Some(S::Highlight), false),
            Element::Detail => (S::Fg, None, false),
            Element::Log => (S::Fg, None, false),
            Element::LogInfo => (S::Info, None, false),
            Element::LogWarn => (S::Warning, None, false),
            Element::LogError => (S::Error, None, false),
            Element::Popup => (S::Fg, Some(S::Bg), false),
            Element::Help => (S::Fg, Some(S::Bg), false),
            Element::CommandLine => (S::Fg, None, false),
            Element::Gauge => (S::Gauge, Some(S::GaugeBg), false),
            Element::Banner => (S::BadgeFg, Some(S::Warning), true),
            Element::ModeLive => (S::BadgeFg, Some(S::ModeLive), true),
            Element::ModeDryRun => (S::BadgeFg, Some(S::ModeDryRun), true),
            Element::ModeRehearsal => (S::BadgeFg, Some(S::ModeRehearsal), true),
            Element::StatusOk => (S::Success, None, false),
            Element::StatusFail => (S::Error, None, true),
            Element::StatusPending => (S::Muted, None, false),
            Element::StatusRunning => (S::Info, None, false),
        };
        StylePatch {
            fg: Some(ColorRef::Slot(fg)),
            bg: bg.map(ColorRef::Slot),
            bold: bold.then_some(true),
            ..StylePatch::default()
        }
    }
}

/// A colour reference inside a widget override: a slot, or a literal colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ColorRef {
    Slot(Slot),
    Color(Color),
}

/// A partial style of an element; `None` fields fall through to the layer below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct StylePatch {
    fg: Option<ColorRef>,
    bg: Option<ColorRef>,
    bold: Option<bool>,
    dim: Option<bool>,
    italic: Option<bool>,
    underline: Option<bool>,
    reversed: Option<bool>,
}

impl StylePatch {
    /// `top`'s fields where set, `self`'s otherwise.
    pub(super) fn overlay(self, top: StylePatch) -> StylePatch {
        StylePatch {
            fg: top.fg.or(self.fg),
            bg: top.bg.or(self.bg),
            bold: top.bold.or(self.bold),
            dim: top.dim.or(self.dim),
            italic: top.italic.or(self.italic),
            underline: top.underline.or(self.underline),
            reversed: top.reversed.or(self.reversed),
        }
    }

    pub(super) fn to_style(self, slots: &[Color; Slot::COUNT]) -> Style {
        let colour = |r: ColorRef| match r {
            ColorRef::Slot(slot) => slots[slot.index()],
            ColorRef::Color(c) => c,
        };
        let mut style = Style::default();
        if let Some(fg) = self.fg {
            style = style.fg(colour(fg));
        }
        if let Some(bg) = self.bg {
            style = style.bg(colour(bg));
        }
        for (flag, modifier) in [
            (self.bold, Modifier::BOLD),
            (self.dim, Modifier::DIM),
            (self.italic, Modifier::ITALIC),
            (self.underline, Modifier::UNDERLINED),
            (self.reversed, Modifier::REVERSED),
        ] {
            if flag == Some(true) {
                style = style.add_modifier(modifier);
            }
        }
        style
    }
}

/// A theme's `base = "…"`, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BaseRef {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) column: usize,
}

/// One theme file after parsing and validation, before `base` is applied.
#[derive(Clone, Debug)]
pub(super) struct ThemeSpec {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) base: Option<BaseRef>,
    pub(super) dark: Option<bool>,
    pub(super) border_type: Option<BorderType>,
    pub(super) slots: [Option<Color>; Slot::COUNT],
    /// The `[widgets]` overrides, one per element.
    pub(super) elements: [StylePatch; Element::COUNT],
    pub(super) origin: String,
    /// Location of the `name` value (or 1:1).
    pub(super) name_at: (usize, usize),
    /// This is the embedded copy of the default theme (the root of all completion).
    pub(super) builtin_default: bool,
}

impl ThemeSpec {
    pub(super) fn empty(name: &str, origin: &str) -> Self {
        ThemeSpec {
            name: name.to_string(),
            description: None,
            base: None,
            dark: None,
            border_type: None,
            slots: [None; Slot::COUNT],
            elements: [StylePatch::default(); Element::COUNT],
            origin: origin.to_string(),
            name_at: (1, 1),
            builtin_default: false,
        }
    }

    /// `top` layered over `self` (the base). Identity fields come from `top`.
    pub(super) fn overlay(&self, top: &ThemeSpec) -> ThemeSpec {
        let mut out = top.clone();
        out.dark = top.dark.or(self.dark);
        out.border_type = top.border_type.or(self.border_type);
        for (slot, base) in out.slots.iter_mut().zip(self.slots.iter()) {
            *slot = slot.or(*base);
        }
        for (element, base) in out.elements.iter_mut().zip(self.elements.iter()) {
            *element = base.overlay(*element);
        }
        out
    }
}

const TOP_KEYS: [&str; 8] = [
    "name",
    "description",
    "base",
    "dark",
    "border_type",
    "slots",
    "widgets",
    "$schema",
];
/// The fields of a `[widgets.<name>]` table.
const WIDGET_FIELDS: [&str; 7] = ["fg", "bg", "bold", "dim", "italic", "underline", "reversed"];
const COLOUR_NAMES: [&str; 17] = [
    "reset",
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "gray",
    "darkgray",
    "lightred",
    "lightgreen",
    "lightyellow",
    "lightblue",
    "lightmagenta",
    "lightcyan",
    "white",
];
const COLOUR_HELP: &str =
    "use a colour name such as \"cyan\", \"#rrggbb\", an index \"0\"..\"255\" or \"reset\"";
const BORDER_TYPES: [(&str, BorderType); 4] = [
    ("plain", BorderType::Plain),
    ("rounded", BorderType::Rounded),
    ("double", BorderType::Double),
    ("thick", BorderType::Thick),
];

fn parse_colour(s: &str) -> Option<Color> {
    Color::from_str(s).ok()
}

fn type_error(expected: &str, found: &DeValue<'_>) -> String {
    format!("expected {expected}, found {}", found.type_str())
}

/// [`type_error`] for a value that should be a colour: an integer there is most likely
/// a colour index written without quotes.
fn colour_type_error(expected: &str, found: &DeValue<'_>) -> String {
    let mut msg = type_error(expected, found);
    if matches!(found, DeValue::Integer(_)) {
        msg.push_str(" (write colour indices as strings, e.g. \"238\")");
    }
    msg
}

fn expect_str<'v>(p: &mut Problems<'_>, key: &str, value: &'v Value<'_>) -> Option<&'v str> {
    expect_str_or(p, key, value, type_error)
}

/// [`expect_str`] for a colour (see [`colour_type_error`]).
fn expect_colour_str<'v>(p: &mut Problems<'_>, key: &str, value: &'v Value<'_>) -> Option<&'v str> {
    expect_str_or(p, key, value, colour_type_error)
}

fn expect_str_or<'v>(
    p: &mut Problems<'_>,
    key: &str,
    value: &'v Value<'_>,
    wrong_type: fn(&str, &DeValue<'_>) -> String,
) -> Option<&'v str> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        other => {
            p.push(value.span(), key, wrong_type("a string", other));
            None
        }
    }
}

fn expect_bool(p: &mut Problems<'_>, key: &str, value: &Value<'_>) -> Option<bool> {
    match value.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => {
            p.push(value.span(), key, type_error("a boolean", other));
            None
        }
    }
}

fn expect_table<'v, 'i>(
    p: &mut Problems<'_>,
    key: &str,
    value: &'v Value<'i>,
) -> Option<&'v DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            p.push(value.span(), key, type_error("a table", other));
            None
        }
    }
}

/// Message for a name that must be a theme name.
pub(super) fn theme_name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("must not be empty")
    } else if name.contains('/') || name.contains('\\') || name.ends_with(".toml") {
        Some("must be a theme name, not a path (no `/`, no `.toml`)")
    } else {
        None
    }
}

/// Parses and validates one theme file. `fallback_name` is used when `name` is absent.
pub(super) fn parse_spec(
    text: &str,
    origin: &str,
    fallback_name: &str,
) -> Result<ThemeSpec, ThemeError> {
    let mut p = Problems::new(text, origin);
    let (doc, errors) = toml_spans::parse(text);
    if !errors.is_empty() {
        for err in errors {
            p.push(err.span, "", format!("TOML syntax: {}", err.message));
        }
        return p.into_result(ThemeSpec::empty(fallback_name, origin));
    }

    let mut spec = ThemeSpec::empty(fallback_name, origin);
    for (key, key_span, value) in toml_spans::entries(doc.get_ref()) {
        match key {
            "name" => {
                if let Some(name) = expect_str(&mut p, "name", value) {
                    if let Some(msg) = theme_name_problem(name) {
                        p.push(value.span(), "name", format!("{} {msg}", quoted(name)));
                    } else {
                        spec.name = name.to_string();
                        spec.name_at = p.location(value.span().start);
                    }
                }
            }
            "description" => {
                if let Some(d) = expect_str(&mut p, "description", value) {
                    spec.description = Some(d.to_string());
                }
            }
            "base" => {
                if let Some(base) = expect_str(&mut p, "base", value) {
                    if let Some(msg) = theme_name_problem(base) {
                        p.push(value.span(), "base", format!("{} {msg}", quoted(base)));
                    } else {
                        let (line, column) = p.location(value.span().start);
                        spec.base = Some(BaseRef {
                            name: base.to_string(),
                            line,
                            column,
                        });
                    }
                }
            }
            "dark" => spec.dark = expect_bool(&mut p, "dark", value).or(spec.dark),
            "border_type" => {
                if let Some(s) = expect_str(&mut p, "border_type", value) {
                    match BORDER_TYPES.iter().find(|(k, _)| *k == s) {
                        Some((_, b)) => spec.border_type = Some(*b),
                        None => p.push(
                            value.span(),
                            "border_type",
                            format!(
                                "{} is not a border type (expected one of {})",
                                quoted(s),
                                BORDER_TYPES.map(|(k, _)| k).join(", ")
                            ),
                        ),
                    }
                }
            }
            "slots" => {
                if let Some(table) = expect_table(&mut p, "slots", value) {
                    parse_slots(&mut p, table, &mut spec);
                }
            }
            "widgets" => {
                if let Some(table) = expect_table(&mut p, "widgets", value) {
                    parse_widgets(&mut p, table, &mut spec);
                }
            }
            "$schema" => {
                let _ = expect_str(&mut p, "$schema", value);
            }
            other => {
                // `$schema` is accepted, not advertised.
                let hint = unknown_hint(other, &TOP_KEYS, "keys", &TOP_KEYS[..7]);
                p.push(key_span, &escape_key(other), format!("unknown key{hint}"));
            }
        }
    }
    p.into_result(spec)
}

fn parse_slots(p: &mut Problems<'_>, table: &DeTable<'_>, spec: &mut ThemeSpec) {
    for (name, key_span, value) in toml_spans::entries(table) {
        let path = format!("slots.{}", escape_key(name));
        let Some(slot) = Slot::from_key(name) else {
            let hint = unknown_hint(name, &Slot::keys(), "slots", &Slot::keys());
            p.push(key_span, &path, format!("unknown slot{hint}"));
            continue;
        };
        let Some(text) = expect_colour_str(p, &path, value) else {
            continue;
        };
        match parse_colour(text) {
            Some(colour) => spec.slots[slot.index()] = Some(colour),
            None => {
                let hint = if Slot::from_key(text).is_some() {
                    "a slot cannot refer to another slot; write the colour itself".to_string()
                } else if let Some(s) = did_you_mean(text, &COLOUR_NAMES) {
                    format!("did you mean `{s}`?")
                } else {
                    COLOUR_HELP.to_string()
                };
                p.push(
                    value.span(),
                    &path,
                    format!("{} is not a colour ({hint})", quoted(text)),
                );
            }
        }
    }
}

/// A widget override's `fg`/`bg` value: a slot name, else a colour.
fn parse_colour_ref(p: &mut Problems<'_>, path: &str, value: &Value<'_>) -> Option<ColorRef> {
    let text = expect_colour_str(p, path, value)?;
    if let Some(slot) = Slot::from_key(text) {
        return Some(ColorRef::Slot(slot));
    }
    if let Some(colour) = parse_colour(text) {
        return Some(ColorRef::Color(colour));
    }
    let mut candidates = Slot::keys();
    candidates.extend(COLOUR_NAMES);
    let hint = match did_you_mean(text, &candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("use a slot name such as \"accent\", or {COLOUR_HELP}"),
    };
    p.push(
        value.span(),
        path,
        format!("{} is neither a slot nor a colour ({hint})", quoted(text)),
    );
    None
}

fn parse_widgets(p: &mut Problems<'_>, table: &DeTable<'_>, spec: &mut ThemeSpec) {
    for (name, key_span, value) in toml_spans::entries(table) {
        let path = format!("widgets.{}", escape_key(name));
        let Some(element) = Element::from_key(name) else {
            let hint = unknown_hint(name, &Element::keys(), "widgets", &Element::keys());
            p.push(key_span, &path, format!("unknown widget{hint}"));
            continue;
        };
        let mut patch = StylePatch::default();
        match value.get_ref() {
            DeValue::String(_) => patch.fg = parse_colour_ref(p, &path, value),
            DeValue::Table(fields) => {
                for (field, field_span, fvalue) in toml_spans::entries(fields) {
                    let fpath = format!("{path}.{}", escape_key(field));
                    match field {
                        "fg" => patch.fg = parse_colour_ref(p, &fpath, fvalue),
                        "bg" => patch.bg = parse_colour_ref(p, &fpath, fvalue),
                        "bold" => patch.bold = expect_bool(p, &fpath, fvalue),
                        "dim" => patch.dim = expect_bool(p, &fpath, fvalue),
                        "italic" => patch.italic = expect_bool(p, &fpath, fvalue),
                        "underline" => patch.underline = expect_bool(p, &fpath, fvalue),
                        "reversed" => patch.reversed = expect_bool(p, &fpath, fvalue),
                        other => {
                            let hint =
                                unknown_hint(other, &WIDGET_FIELDS, "fields", &WIDGET_FIELDS);
                            p.push(field_span, &fpath, format!("unknown field{hint}"));
                        }
                    }
                }
            }
            other => p.push(
                value.span(),
                &path,
                colour_type_error(
                    "a table like { fg = \"accent\", bold = true } or a colour string",
                    other,
                ),
            ),
        }
        spec.elements[element.index()] = patch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::theme::Theme;

    /// The theme reader's hints come from the slot names (error.rs holds the matcher).
    #[test]
    fn did_you_mean_finds_typos_only() {
        use super::super::error::did_you_mean;
        assert_eq!(did_you_mean("acent", &Slot::keys()), Some("accent"));
        assert_eq!(did_you_mean("Accent", &Slot::keys()), Some("accent"));
        assert_eq!(
            did_you_mean("highlight-fg", &Slot::keys()),
            Some("highlight_fg")
        );
        assert_eq!(did_you_mean("zzzzqqq", &Slot::keys()), None);
    }

    #[test]
    fn manual_lists_every_slot_and_widget() {
        let docs = include_str!("../../../docs/themes.md");
        for slot in Slot::ALL {
            assert!(
                docs.contains(&format!("| `{}` |", slot.key())),
                "slot {slot} is not in the slot table of docs/themes.md"
            );
        }
        for element in Element::ALL {
            assert!(
                docs.contains(&format!("| `{}` |", element.key())),
                "widget {element} is not in the widget table of docs/themes.md"
            );
        }
    }

    #[test]
    fn key_round_trip() {
        for slot in Slot::ALL {
            assert_eq!(Slot::from_key(slot.key()), Some(*slot));
        }
        for element in Element::ALL {
            assert_eq!(Element::from_key(element.key()), Some(*element));
        }
        assert_eq!(Slot::from_key("Accent"), None);
    }

    #[test]
    fn widget_override_merges_field_by_field() {
        let text = r#"
            [widgets.table_header]
            underline = true
            [widgets.header]
            bold = false
        "#;
        let theme = Theme::from_toml_str(text, "t.toml").expect("valid");
        let accent = theme.slot(Slot::Accent);
        assert_eq!(
            theme.style(Element::TableHeader),
            Style::default()
                .fg(accent)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        );
        assert_eq!(
            theme.style(Element::Header),
            Style::default().fg(theme.slot(Slot::Title))
        );
    }

    #[test]
    fn slot_reference_in_slots_is_explained() {
        let err = Theme::from_toml_str("[slots]\ntitle = \"accent\"\n", "t.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("slots.title"), "{msg}");
        assert!(msg.contains("cannot refer to another slot"), "{msg}");
    }

    #[test]
    fn control_characters_in_keys_are_escaped() {
        let err =
            Theme::from_toml_str("[slots]\n\"\\u001b[31m\" = \"red\"\n", "t.toml").unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains('\u{1b}'), "{msg:?}");
    }
}
