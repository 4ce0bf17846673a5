//! # Themes
//!
//! The TUI takes every colour from a *theme*: a small TOML file of **semantic slots**
//! ("accent", "error", "selected-row background", …) plus optional **per-widget
//! overrides**. Four themes are built into the binary (`default`, `light`,
//! `high-contrast`, `prod-red`, copies of `themes/*.toml`), so wavelift works with no
//! theme directory at all.
//!
//! ## Choosing a theme
//!
//! A theme is named either by its name (`default`, `light`, or the `name` of a file in
//! the theme directory) or by a path: a value that contains `/` or ends in `.toml` is
//! always read as a file. Files in the theme directory override built-in themes of the
//! same name. When the `NO_COLOR` environment variable is set to a non-empty value,
//! wavelift draws without any colour or text attribute, whatever the theme says.
//!
//! A theme that cannot be used (syntax error, unknown key, bad colour, missing base,
//! inheritance cycle) never stops the program: wavelift falls back to the built-in
//! `default` theme and shows a warning naming the file, line, column and key, e.g.
//!
//! ```text
//! themes/mine.toml:12:1: slots.acent: unknown slot (did you mean `accent`?)
//! themes/mine.toml:13:9: slots.error: "#12zz45" is not a colour (…)
//! ```
//!
//! All problems of a file are reported at once.
//!
//! ## Format
//!
//! ```toml
//! name = "mine"                 # optional; defaults to the file name without `.toml`
//! description = "My theme"      # optional
//! base = "default"              # optional: start from another theme
//! dark = true                   # optional: a hint for the UI (dark background?)
//! border_type = "rounded"       # optional: plain | rounded | double | thick
//!
//! [slots]                       # semantic colours; set only the ones you change
//! accent = "#89b4fa"
//! error = "lightred"
//! highlight = "238"
//!
//! [widgets.table_header]        # optional per-widget overrides
//! fg = "accent"                 # a slot name or a colour
//! bold = true
//! underline = true
//!
//! [widgets]
//! footer = "muted"              # short form: the same as { fg = "muted" }
//! ```
//!
//! Top-level keys: `name`, `description`, `base`, `dark`, `border_type`, `slots`,
//! `widgets` (and `$schema`, which is ignored). Any other key is an error.
//!
//! **Colours** are strings: a name (`black`, `red`, `green`, `yellow`, `blue`,
//! `magenta`, `cyan`, `gray`, `darkgray`, `lightred`, `lightgreen`, `lightyellow`,
//! `lightblue`, `lightmagenta`, `lightcyan`, `white`), `"#rrggbb"`, a 256-colour index
//! written as a string (`"238"`), or `"reset"` (the terminal's own default colour, e.g.
//! to keep a transparent background). A slot's value must be a colour; it cannot name
//! another slot.
//!
//! **Inheritance**: `base = "<theme name>"` starts from that theme (built-in, or a file
//! in the same theme directory); the child's slots replace the base's slots, and the
//! child's widget overrides are merged field by field over the base's. Widget styles are
//! computed after merging, so a child that only changes the `accent` slot also changes
//! every widget that uses `accent`. A missing base and an inheritance cycle (`a` based on
//! `b`, `b` based on `a`; also a theme based on itself) are errors naming the file.
//!
//! A theme **without** `base` is completed from the built-in `default` theme: every slot
//! it does not set takes the built-in default's value. This keeps your themes working
//! when a later version adds a slot. (The built-in `default` itself defines every slot.)
//!
//! ### Slots
//!
//! | slot | used for |
//! |---|---|
//! | `fg` | body text |
//! | `bg` | screen background (`"reset"` keeps the terminal's background) |
//! | `accent` | key hints, table headers, things that want attention |
//! | `muted` | secondary text: footer, timestamps, pending items |
//! | `success` | succeeded VMs and checks |
//! | `warning` | warnings, the bad-theme banner |
//! | `error` | failures |
//! | `info` | informational log lines |
//! | `highlight` | background of the selected row |
//! | `highlight_fg` | text of the selected row |
//! | `border` | pane borders |
//! | `border_focused` | border of the focused pane |
//! | `title` | pane titles and the header |
//! | `mode_live` | the LIVE mode badge (this run changes real clusters) |
//! | `mode_dry_run` | the DRY-RUN mode badge |
//! | `mode_rehearsal` | the REHEARSAL mode badge (embedded sim cluster) |
//! | `gauge` | progress bar, filled part |
//! | `gauge_bg` | progress bar, empty part |
//! | `badge_fg` | text drawn on coloured badges (mode badges, banner) |
//!
//! ### Widgets
//!
//! Each `[widgets.<name>]` table may set `fg`, `bg` (a slot name or a colour) and the
//! booleans `bold`, `dim`, `italic`, `underline`, `reversed`. Fields you leave out keep
//! the default below; `bold = false` removes a default bold. A widget without an
//! override uses its default:
//!
//! | widget | element | default |
//! |---|---|---|
//! | `screen` | the whole screen, under everything else | fg `fg`, bg `bg` |
//! | `header` | top bar (plan, context, mode) | fg `title`, bold |
//! | `footer` | bottom bar of key hints | fg `muted` |
//! | `key_hint` | the key letters inside the footer | fg `accent`, bold |
//! | `title` | pane titles | fg `title`, bold |
//! | `border` | pane borders | fg `border` |
//! | `border_focused` | border of the focused pane | fg `border_focused` |
//! | `table_header` | column headers of the wave and VM tables | fg `accent`, bold |
//! | `table_row` | table rows | fg `fg` |
//! | `table_selected` | the selected row | fg `highlight_fg`, bg `highlight` |
//! | `detail` | the detail pane of the selected VM | fg `fg` |
//! | `log` | log pane lines | fg `fg` |
//! | `log_info` | info log lines | fg `info` |
//! | `log_warn` | warning log lines | fg `warning` |
//! | `log_error` | error log lines | fg `error` |
//! | `popup` | confirmation and message pop-ups | fg `fg`, bg `bg` |
//! | `help` | the `?` help overlay | fg `fg`, bg `bg` |
//! | `command_line` | the `:` command line | fg `fg` |
//! | `gauge` | progress bars | fg `gauge`, bg `gauge_bg` |
//! | `banner` | warning banner (e.g. "bad theme, using default") | fg `badge_fg`, bg `warning`, bold |
//! | `mode_live` | LIVE badge | fg `badge_fg`, bg `mode_live`, bold |
//! | `mode_dry_run` | DRY-RUN badge | fg `badge_fg`, bg `mode_dry_run`, bold |
//! | `mode_rehearsal` | REHEARSAL badge | fg `badge_fg`, bg `mode_rehearsal`, bold |
//! | `status_ok` | state of a finished VM or check | fg `success` |
//! | `status_fail` | state of a failed VM or check | fg `error`, bold |
//! | `status_pending` | state of a VM not started yet | fg `muted` |
//! | `status_running` | state of a VM in progress | fg `info` |
//!
//! ## API
//!
//! [`ThemeSet`] holds the known themes ([`ThemeSet::builtin`], [`ThemeSet::load_dir`])
//! and [`ThemeSet::resolve`]s a name or path into a [`Theme`]; the TUI asks a theme for
//! [`Theme::slot`] colours and [`Theme::style`]s. [`honour_no_color`] applies `NO_COLOR`
//! and [`fallback`] turns a failed load into the default theme plus a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::BorderType;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Name of the theme used when none is chosen, and by [`fallback`].
pub const DEFAULT_THEME: &str = "default";

/// The themes compiled into the binary: `(name, TOML text)`.
const BUILTIN_SOURCES: [(&str, &str); 4] = [
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("prod-red", include_str!("../../themes/prod-red.toml")),
];

/// Names of the built-in themes.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_SOURCES.iter().map(|(name, _)| *name).collect()
}

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

            fn index(self) -> usize {
                self as usize
            }

            fn keys() -> Vec<&'static str> {
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
    /// A UI element with its own style (`[widgets.<name>]` in a theme file).
    pub enum Widget {
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

impl Widget {
    /// The built-in style of this widget, in terms of slots (see the module docs).
    fn default_patch(self) -> WidgetPatch {
        use Slot as S;
        let (fg, bg, bold) = match self {
            Widget::Screen => (S::Fg, Some(S::Bg), false),
            Widget::Header => (S::Title, None, true),
            Widget::Footer => (S::Muted, None, false),
            Widget::KeyHint => (S::Accent, None, true),
            Widget::Title => (S::Title, None, true),
            Widget::Border => (S::Border, None, false),
            Widget::BorderFocused => (S::BorderFocused, None, false),
            Widget::TableHeader => (S::Accent, None, true),
            Widget::TableRow => (S::Fg, None, false),
            Widget::TableSelected => (S::HighlightFg, Some(S::Highlight), false),
            Widget::Detail => (S::Fg, None, false),
            Widget::Log => (S::Fg, None, false),
            Widget::LogInfo => (S::Info, None, false),
            Widget::LogWarn => (S::Warning, None, false),
            Widget::LogError => (S::Error, None, false),
            Widget::Popup => (S::Fg, Some(S::Bg), false),
            Widget::Help => (S::Fg, Some(S::Bg), false),
            Widget::CommandLine => (S::Fg, None, false),
            Widget::Gauge => (S::Gauge, Some(S::GaugeBg), false),
            Widget::Banner => (S::BadgeFg, Some(S::Warning), true),
            Widget::ModeLive => (S::BadgeFg, Some(S::ModeLive), true),
            Widget::ModeDryRun => (S::BadgeFg, Some(S::ModeDryRun), true),
            Widget::ModeRehearsal => (S::BadgeFg, Some(S::ModeRehearsal), true),
            Widget::StatusOk => (S::Success, None, false),
            Widget::StatusFail => (S::Error, None, true),
            Widget::StatusPending => (S::Muted, None, false),
            Widget::StatusRunning => (S::Info, None, false),
        };
        WidgetPatch {
            fg: Some(ColorRef::Slot(fg)),
            bg: bg.map(ColorRef::Slot),
            bold: bold.then_some(true),
            ..WidgetPatch::default()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// One problem in a theme file, with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where the text came from (a path, or `(built-in) themes/<name>.toml`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted key path, e.g. `slots.accent` or `widgets.header.fg`; empty for syntax
    /// errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a theme could not be loaded. Every variant names the file it is about.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ThemeError {
    /// The file could not be read.
    #[error("{path}: cannot read theme file: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file is not a valid theme: TOML syntax errors, or unknown keys, wrong types,
    /// bad colours (all of them, one per line).
    #[error("{}", join_lines(.problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// `base = "…"` names a theme that does not exist.
    #[error(
        "{origin}:{line}:{column}: base: no theme named {base:?}{}; known themes: {}",
        suggestion_hint(.suggestion),
        .known.join(", ")
    )]
    MissingBase {
        /// The file whose `base` is missing.
        origin: String,
        /// Line of the `base` value.
        line: usize,
        /// Column of the `base` value.
        column: usize,
        /// The missing theme's name.
        base: String,
        /// Closest known name, if any is close.
        suggestion: Option<String>,
        /// All known theme names.
        known: Vec<String>,
    },
    /// The `base` chain loops.
    #[error("{origin}:{line}:{column}: base: inheritance cycle: {}", .chain.join(" -> "))]
    Cycle {
        /// The file whose `base` closes the loop.
        origin: String,
        /// Line of that `base` value.
        line: usize,
        /// Column of that `base` value.
        column: usize,
        /// The loop, as `name (origin)` entries, ending with the repeated name.
        chain: Vec<String>,
    },
    /// No theme of that name (and the value is not a path).
    #[error(
        "unknown theme {name:?}{}; known themes: {} (a value containing `/` or ending in \
         `.toml` is read as a file)",
        suggestion_hint(.suggestion),
        .known.join(", ")
    )]
    UnknownTheme {
        /// The requested name.
        name: String,
        /// Closest known name, if any is close.
        suggestion: Option<String>,
        /// All known theme names.
        known: Vec<String>,
    },
}

impl ThemeError {
    /// The individual problems of an [`ThemeError::Invalid`] error (empty otherwise).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ThemeError::Invalid { problems } => problems,
            _ => &[],
        }
    }

    fn io(path: &Path, err: std::io::Error) -> Self {
        ThemeError::Io {
            path: path.display().to_string(),
            source: Arc::new(err),
        }
    }
}

fn join_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn suggestion_hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// The candidate closest to `input`, if it is close enough to be a likely typo.
fn did_you_mean<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let input = input.to_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&input, &c.to_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Text taken from a theme file, made safe to print (no control characters).
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn escape_key(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Collects problems of one file, converting byte offsets to line:column.
struct Problems<'a> {
    text: &'a str,
    origin: &'a str,
    line_starts: Vec<usize>,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    fn new(text: &'a str, origin: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Problems {
            text,
            origin,
            line_starts,
            list: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn location(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            None => offset.saturating_sub(start),
        };
        (line.max(1), column + 1)
    }

    fn push(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = self.location(span.start);
        self.list.push(Problem {
            origin: self.origin.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn into_result<T>(self, value: T) -> Result<T, ThemeError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ThemeError::Invalid {
                problems: self.list,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsed, unresolved theme files
// ---------------------------------------------------------------------------------------

/// A colour reference inside a widget override: a slot, or a literal colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColorRef {
    Slot(Slot),
    Color(Color),
}

/// A partial widget style; `None` fields fall through to the layer below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WidgetPatch {
    fg: Option<ColorRef>,
    bg: Option<ColorRef>,
    bold: Option<bool>,
    dim: Option<bool>,
    italic: Option<bool>,
    underline: Option<bool>,
    reversed: Option<bool>,
}

impl WidgetPatch {
    /// `top`'s fields where set, `self`'s otherwise.
    fn overlay(self, top: WidgetPatch) -> WidgetPatch {
        WidgetPatch {
            fg: top.fg.or(self.fg),
            bg: top.bg.or(self.bg),
            bold: top.bold.or(self.bold),
            dim: top.dim.or(self.dim),
            italic: top.italic.or(self.italic),
            underline: top.underline.or(self.underline),
            reversed: top.reversed.or(self.reversed),
        }
    }

    fn to_style(self, slots: &[Color; Slot::COUNT]) -> Style {
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

#[derive(Clone, Debug, PartialEq, Eq)]
struct BaseRef {
    name: String,
    line: usize,
    column: usize,
}

/// One theme file after parsing and validation, before `base` is applied.
#[derive(Clone, Debug)]
struct ThemeSpec {
    name: String,
    description: Option<String>,
    base: Option<BaseRef>,
    dark: Option<bool>,
    border_type: Option<BorderType>,
    slots: [Option<Color>; Slot::COUNT],
    widgets: [WidgetPatch; Widget::COUNT],
    origin: String,
    /// Location of the `name` value (or 1:1).
    name_at: (usize, usize),
    /// This is the embedded copy of the default theme (the root of all completion).
    builtin_default: bool,
}

impl ThemeSpec {
    fn empty(name: &str, origin: &str) -> Self {
        ThemeSpec {
            name: name.to_string(),
            description: None,
            base: None,
            dark: None,
            border_type: None,
            slots: [None; Slot::COUNT],
            widgets: [WidgetPatch::default(); Widget::COUNT],
            origin: origin.to_string(),
            name_at: (1, 1),
            builtin_default: false,
        }
    }

    /// `top` layered over `self` (the base). Identity fields come from `top`.
    fn overlay(&self, top: &ThemeSpec) -> ThemeSpec {
        let mut out = top.clone();
        out.dark = top.dark.or(self.dark);
        out.border_type = top.border_type.or(self.border_type);
        for (slot, base) in out.slots.iter_mut().zip(self.slots.iter()) {
            *slot = slot.or(*base);
        }
        for (widget, base) in out.widgets.iter_mut().zip(self.widgets.iter()) {
            *widget = base.overlay(*widget);
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

fn expect_str<'v>(
    p: &mut Problems<'_>,
    key: &str,
    value: &'v Spanned<DeValue<'_>>,
) -> Option<&'v str> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        other => {
            p.push(value.span(), key, type_error("a string", other));
            None
        }
    }
}

fn expect_colour_str<'v>(
    p: &mut Problems<'_>,
    key: &str,
    value: &'v Spanned<DeValue<'_>>,
) -> Option<&'v str> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        other => {
            p.push(value.span(), key, colour_type_error("a string", other));
            None
        }
    }
}

fn expect_bool(p: &mut Problems<'_>, key: &str, value: &Spanned<DeValue<'_>>) -> Option<bool> {
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
    value: &'v Spanned<DeValue<'i>>,
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
fn theme_name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("must not be empty")
    } else if name.contains('/') || name.contains('\\') || name.ends_with(".toml") {
        Some("must be a theme name, not a path (no `/`, no `.toml`)")
    } else {
        None
    }
}

/// Parses and validates one theme file. `fallback_name` is used when `name` is absent.
fn parse_spec(text: &str, origin: &str, fallback_name: &str) -> Result<ThemeSpec, ThemeError> {
    let mut p = Problems::new(text, origin);
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for err in errors {
            let span = err.span().unwrap_or(0..0);
            p.push(span, "", format!("TOML syntax: {}", err.message().trim()));
        }
        return p.into_result(ThemeSpec::empty(fallback_name, origin));
    }

    let mut spec = ThemeSpec::empty(fallback_name, origin);
    for (key, value) in doc.get_ref().iter() {
        let key_str: &str = key.get_ref();
        match key_str {
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
                let hint = match did_you_mean(other, &TOP_KEYS) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => format!(" (known keys: {})", TOP_KEYS[..7].join(", ")),
                };
                p.push(key.span(), &escape_key(other), format!("unknown key{hint}"));
            }
        }
    }
    p.into_result(spec)
}

fn parse_slots(p: &mut Problems<'_>, table: &DeTable<'_>, spec: &mut ThemeSpec) {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let path = format!("slots.{}", escape_key(name));
        let Some(slot) = Slot::from_key(name) else {
            let hint = match did_you_mean(name, &Slot::keys()) {
                Some(s) => format!(" (did you mean `{s}`?)"),
                None => format!(" (known slots: {})", Slot::keys().join(", ")),
            };
            p.push(key.span(), &path, format!("unknown slot{hint}"));
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

/// A widget `fg`/`bg` value: a slot name, else a colour.
fn parse_colour_ref(
    p: &mut Problems<'_>,
    path: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<ColorRef> {
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
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let path = format!("widgets.{}", escape_key(name));
        let Some(widget) = Widget::from_key(name) else {
            let hint = match did_you_mean(name, &Widget::keys()) {
                Some(s) => format!(" (did you mean `{s}`?)"),
                None => format!(" (known widgets: {})", Widget::keys().join(", ")),
            };
            p.push(key.span(), &path, format!("unknown widget{hint}"));
            continue;
        };
        let mut patch = WidgetPatch::default();
        match value.get_ref() {
            DeValue::String(_) => patch.fg = parse_colour_ref(p, &path, value),
            DeValue::Table(fields) => {
                for (fkey, fvalue) in fields.iter() {
                    let field: &str = fkey.get_ref();
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
                            let hint = match did_you_mean(other, &WIDGET_FIELDS) {
                                Some(s) => format!(" (did you mean `{s}`?)"),
                                None => format!(" (known fields: {})", WIDGET_FIELDS.join(", ")),
                            };
                            p.push(fkey.span(), &fpath, format!("unknown field{hint}"));
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
        spec.widgets[widget.index()] = patch;
    }
}

fn builtin_origin(name: &str) -> String {
    format!("(built-in) themes/{name}.toml")
}

/// The embedded default theme, parsed once. It is the root every theme without `base`
/// is completed from.
fn builtin_default_spec() -> &'static ThemeSpec {
    static SPEC: OnceLock<ThemeSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let origin = builtin_origin(DEFAULT_THEME);
        let mut spec = parse_spec(BUILTIN_SOURCES[0].1, &origin, DEFAULT_THEME)
            // Unreachable with the shipped file (a test checks it); an empty spec
            // resolves every slot to `Color::Reset` rather than panicking.
            .unwrap_or_else(|_| ThemeSpec::empty(DEFAULT_THEME, &origin));
        spec.builtin_default = true;
        spec.base = None;
        spec
    })
}

// ---------------------------------------------------------------------------------------
// Resolved themes
// ---------------------------------------------------------------------------------------

/// A fully resolved theme: every slot has a colour, every widget a style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Theme {
    name: String,
    description: Option<String>,
    origin: String,
    dark: bool,
    no_color: bool,
    border_type: BorderType,
    slots: [Color; Slot::COUNT],
    styles: [Style; Widget::COUNT],
}

impl Default for Theme {
    /// The built-in `default` theme.
    fn default() -> Self {
        Theme::from_spec(builtin_default_spec())
    }
}

impl Theme {
    fn from_spec(spec: &ThemeSpec) -> Theme {
        let slots = spec.slots.map(|c| c.unwrap_or(Color::Reset));
        let mut styles = [Style::default(); Widget::COUNT];
        for widget in Widget::ALL {
            styles[widget.index()] = widget
                .default_patch()
                .overlay(spec.widgets[widget.index()])
                .to_style(&slots);
        }
        Theme {
            name: spec.name.clone(),
            description: spec.description.clone(),
            origin: spec.origin.clone(),
            dark: spec.dark.unwrap_or(true),
            no_color: false,
            border_type: spec.border_type.unwrap_or(BorderType::Plain),
            slots,
            styles,
        }
    }

    /// Parses a theme from TOML text. `origin` (usually the file path) appears in every
    /// error message and in [`Theme::origin`]; its file stem is the default name. A
    /// `base` is resolved against the built-in themes only.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Theme, ThemeError> {
        ThemeSet::builtin().resolve_str(text, origin)
    }

    /// Loads a theme file. Its `base` is resolved against the built-in themes and the
    /// other `*.toml` files in the same directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Theme, ThemeError> {
        let path = path.as_ref();
        let set = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                ThemeSet::load_dir(dir).unwrap_or_else(|_| ThemeSet::builtin())
            }
            _ => ThemeSet::builtin(),
        };
        set.resolve_path(path)
    }

    /// A built-in theme by name (`default`, `light`, `high-contrast`, `prod-red`).
    pub fn builtin(name: &str) -> Option<Theme> {
        if !BUILTIN_SOURCES.iter().any(|(n, _)| *n == name) {
            return None;
        }
        ThemeSet::builtin().resolve(name).ok()
    }

    /// A theme without any colour or attribute, for `NO_COLOR`: every slot is
    /// [`Color::Reset`] and every style is `Style::default()`.
    pub fn no_color() -> Theme {
        Theme {
            name: "no-color".to_string(),
            description: Some("NO_COLOR is set: no colours, no attributes".to_string()),
            origin: "NO_COLOR".to_string(),
            dark: true,
            no_color: true,
            border_type: BorderType::Plain,
            slots: [Color::Reset; Slot::COUNT],
            styles: [Style::default(); Widget::COUNT],
        }
    }

    /// The theme's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The theme's description, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Where the theme was loaded from: a path, `(built-in) themes/<name>.toml`, or
    /// `NO_COLOR`. Worth logging.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the theme is meant for a dark background.
    pub fn is_dark(&self) -> bool {
        self.dark
    }

    /// Whether this is the [`Theme::no_color`] theme. The UI should then mark the
    /// selection by other means (e.g. a `>` highlight symbol), since styles are empty.
    pub fn is_no_color(&self) -> bool {
        self.no_color
    }

    /// Border type for pane blocks.
    pub fn border_type(&self) -> BorderType {
        self.border_type
    }

    /// The colour of a slot.
    pub fn slot(&self, slot: Slot) -> Color {
        self.slots[slot.index()]
    }

    /// The style of a widget.
    pub fn style(&self, widget: Widget) -> Style {
        self.styles[widget.index()]
    }
}

/// Applies `NO_COLOR`: when `env_value` is set and non-empty, returns
/// [`Theme::no_color`]; otherwise `theme` unchanged. Pass
/// `std::env::var("NO_COLOR").ok().as_deref()`, or use [`honour_no_color_env`].
pub fn honour_no_color(theme: Theme, env_value: Option<&str>) -> Theme {
    match env_value {
        Some(v) if !v.is_empty() => Theme::no_color(),
        _ => theme,
    }
}

/// [`honour_no_color`] with the process's `NO_COLOR` variable (any non-empty value,
/// even one that is not valid UTF-8, counts).
pub fn honour_no_color_env(theme: Theme) -> Theme {
    match std::env::var_os("NO_COLOR") {
        Some(v) if !v.is_empty() => Theme::no_color(),
        _ => theme,
    }
}

/// Turns a theme load result into a usable theme: the theme itself, or the built-in
/// default plus a warning for the user (to be shown in the TUI, not only logged). The
/// warning contains the full error, one problem per line.
pub fn fallback(result: Result<Theme, ThemeError>) -> (Theme, Option<String>) {
    match result {
        Ok(theme) => (theme, None),
        Err(err) => (
            Theme::default(),
            Some(format!(
                "bad theme, using the built-in `{DEFAULT_THEME}` theme instead: {err}"
            )),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Theme sets
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Entry {
    Ready(Box<ThemeSpec>),
    /// A file that failed to load; the error is reported when the theme is asked for.
    Broken {
        origin: String,
        error: ThemeError,
    },
}

impl Entry {
    fn origin(&self) -> &str {
        match self {
            Entry::Ready(spec) => &spec.origin,
            Entry::Broken { origin, .. } => origin,
        }
    }
}

/// The themes wavelift knows by name: the built-ins, plus the files of a theme
/// directory.
#[derive(Clone, Debug)]
pub struct ThemeSet {
    entries: BTreeMap<String, Entry>,
}

impl ThemeSet {
    /// The built-in themes only.
    pub fn builtin() -> ThemeSet {
        let mut entries = BTreeMap::new();
        for (name, text) in BUILTIN_SOURCES {
            let origin = builtin_origin(name);
            let entry = if name == DEFAULT_THEME {
                Entry::Ready(Box::new(builtin_default_spec().clone()))
            } else {
                match parse_spec(text, &origin, name) {
                    Ok(spec) => Entry::Ready(Box::new(spec)),
                    Err(error) => Entry::Broken { origin, error },
                }
            };
            entries.insert(name.to_string(), entry);
        }
        ThemeSet { entries }
    }

    /// The built-in themes plus every `*.toml` file in `dir`; a file replaces a built-in
    /// theme of the same name. A file is registered under its `name` (or its file stem
    /// when it has none, or cannot be parsed). Broken files do not fail the whole set:
    /// their error is returned when that theme is resolved. Two files with the same name
    /// make that name an error. A directory that does not exist gives the built-ins;
    /// any other I/O error on the directory is returned.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ThemeSet, ThemeError> {
        let dir = dir.as_ref();
        let mut set = ThemeSet::builtin();
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(set),
            Err(e) => return Err(ThemeError::io(dir, e)),
        };
        let mut files: Vec<_> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"))
                    && p.is_file()
            })
            .collect();
        files.sort();

        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for path in files {
            let origin = path.display().to_string();
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let entry = match std::fs::read_to_string(&path) {
                Err(e) => Entry::Broken {
                    origin: origin.clone(),
                    error: ThemeError::io(&path, e),
                },
                Ok(text) => match parse_spec(&text, &origin, &stem) {
                    Ok(spec) => Entry::Ready(Box::new(spec)),
                    Err(error) => Entry::Broken {
                        origin: origin.clone(),
                        error,
                    },
                },
            };
            let (name, name_at) = match &entry {
                Entry::Ready(spec) => (spec.name.clone(), spec.name_at),
                Entry::Broken { .. } => (stem, (1, 1)),
            };
            if let Some(first) = seen.get(&name) {
                let error = ThemeError::Invalid {
                    problems: vec![Problem {
                        origin: origin.clone(),
                        line: name_at.0,
                        column: name_at.1,
                        key: "name".to_string(),
                        message: format!("theme {} is also defined by {first}", quoted(&name)),
                    }],
                };
                set.entries.insert(name, Entry::Broken { origin, error });
                continue;
            }
            seen.insert(name.clone(), origin);
            set.entries.insert(name, entry);
        }
        Ok(set)
    }

    /// Names of all themes in the set, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Where the theme of that name comes from (a path, or `(built-in) …`).
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(Entry::origin)
    }

    /// Adds (or replaces) a theme from TOML text and returns its name. Its `base` is
    /// resolved lazily, when a theme is resolved.
    pub fn insert_toml(&mut self, text: &str, origin: &str) -> Result<String, ThemeError> {
        let spec = parse_spec(text, origin, &stem_of(origin))?;
        let name = spec.name.clone();
        self.entries
            .insert(name.clone(), Entry::Ready(Box::new(spec)));
        Ok(name)
    }

    /// Resolves a theme by name, or by path when the value contains `/` or ends in
    /// `.toml` (its `base` then resolves against this set).
    pub fn resolve(&self, name_or_path: &str) -> Result<Theme, ThemeError> {
        if is_path(name_or_path) {
            return self.resolve_path(Path::new(name_or_path));
        }
        match self.entries.get(name_or_path) {
            Some(Entry::Ready(spec)) => self.resolve_spec(spec),
            Some(Entry::Broken { error, .. }) => Err(error.clone()),
            None => {
                let known = self.names();
                let candidates: Vec<&str> = known.iter().map(String::as_str).collect();
                Err(ThemeError::UnknownTheme {
                    name: name_or_path.to_string(),
                    suggestion: did_you_mean(name_or_path, &candidates).map(str::to_string),
                    known,
                })
            }
        }
    }

    /// Reads and resolves a theme file; its `base` resolves against this set.
    pub fn resolve_path(&self, path: &Path) -> Result<Theme, ThemeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ThemeError::io(path, e))?;
        self.resolve_str(&text, &path.display().to_string())
    }

    /// Parses and resolves theme text (not added to the set); its `base` resolves
    /// against this set.
    pub fn resolve_str(&self, text: &str, origin: &str) -> Result<Theme, ThemeError> {
        let spec = parse_spec(text, origin, &stem_of(origin))?;
        self.resolve_spec(&spec)
    }

    fn resolve_spec(&self, spec: &ThemeSpec) -> Result<Theme, ThemeError> {
        let mut chain = vec![(spec.name.clone(), spec.origin.clone())];
        let merged = self.merge_bases(spec, &mut chain)?;
        Ok(Theme::from_spec(&merged))
    }

    /// `spec` layered over its whole `base` chain (and finally the built-in default).
    fn merge_bases(
        &self,
        spec: &ThemeSpec,
        chain: &mut Vec<(String, String)>,
    ) -> Result<ThemeSpec, ThemeError> {
        let Some(base) = &spec.base else {
            return Ok(if spec.builtin_default {
                spec.clone()
            } else {
                builtin_default_spec().overlay(spec)
            });
        };
        if chain.iter().any(|(name, _)| *name == base.name) {
            let mut links: Vec<String> = chain
                .iter()
                .map(|(name, origin)| format!("{name} ({origin})"))
                .collect();
            links.push(base.name.clone());
            return Err(ThemeError::Cycle {
                origin: spec.origin.clone(),
                line: base.line,
                column: base.column,
                chain: links,
            });
        }
        let parent = match self.entries.get(&base.name) {
            Some(Entry::Ready(parent)) => parent,
            Some(Entry::Broken { error, .. }) => return Err(error.clone()),
            None => {
                let known = self.names();
                let candidates: Vec<&str> = known.iter().map(String::as_str).collect();
                return Err(ThemeError::MissingBase {
                    origin: spec.origin.clone(),
                    line: base.line,
                    column: base.column,
                    base: base.name.clone(),
                    suggestion: did_you_mean(&base.name, &candidates).map(str::to_string),
                    known,
                });
            }
        };
        chain.push((parent.name.clone(), parent.origin.clone()));
        let merged_parent = self.merge_bases(parent, chain)?;
        Ok(merged_parent.overlay(spec))
    }
}

fn is_path(s: &str) -> bool {
    s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) || s.ends_with(".toml")
}

fn stem_of(origin: &str) -> String {
    Path::new(origin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| theme_name_problem(s).is_none())
        .unwrap_or_else(|| "custom".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_docs_list_every_slot_and_widget() {
        let src = include_str!("theme.rs");
        let docs: String = src
            .lines()
            .filter(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for slot in Slot::ALL {
            assert!(
                docs.contains(&format!("| `{}` |", slot.key())),
                "slot {slot} is not in the slot table of the module docs"
            );
        }
        for widget in Widget::ALL {
            assert!(
                docs.contains(&format!("| `{}` |", widget.key())),
                "widget {widget} is not in the widget table of the module docs"
            );
        }
    }

    #[test]
    fn embedded_default_defines_every_slot_explicitly() {
        let spec = parse_spec(BUILTIN_SOURCES[0].1, "default.toml", "default")
            .expect("built-in default parses");
        assert!(spec.base.is_none(), "the root theme cannot have a base");
        for slot in Slot::ALL {
            assert!(
                spec.slots[slot.index()].is_some(),
                "built-in default does not set slot {slot}"
            );
        }
    }

    #[test]
    fn key_round_trip() {
        for slot in Slot::ALL {
            assert_eq!(Slot::from_key(slot.key()), Some(*slot));
        }
        for widget in Widget::ALL {
            assert_eq!(Widget::from_key(widget.key()), Some(*widget));
        }
        assert_eq!(Slot::from_key("Accent"), None);
    }

    #[test]
    fn location_counts_lines_and_characters() {
        let text = "a = 1\nbé = 2\n\nx";
        let p = Problems::new(text, "t");
        assert_eq!(p.location(0), (1, 1));
        assert_eq!(p.location(4), (1, 5));
        assert_eq!(p.location(6), (2, 1));
        // "bé" is 3 bytes; the byte after it is the 3rd character of line 2
        assert_eq!(p.location(9), (2, 3));
        assert_eq!(p.location(text.len() - 1), (4, 1));
        // mid-character and past-the-end offsets do not panic
        assert_eq!(p.location(8).0, 2);
        assert_eq!(p.location(10_000), (4, 2));
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(did_you_mean("acent", &Slot::keys()), Some("accent"));
        assert_eq!(did_you_mean("Accent", &Slot::keys()), Some("accent"));
        assert_eq!(
            did_you_mean("highlight-fg", &Slot::keys()),
            Some("highlight_fg")
        );
        assert_eq!(did_you_mean("zzzzqqq", &Slot::keys()), None);
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
            theme.style(Widget::TableHeader),
            Style::default()
                .fg(accent)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        );
        assert_eq!(
            theme.style(Widget::Header),
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
