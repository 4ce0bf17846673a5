//! Themes: every colour the TUI draws comes from a [`Theme`], resolved from a small TOML
//! file of semantic slots plus per-widget overrides. The user manual (choosing a theme,
//! the file format, the slot and widget tables) is `docs/themes.md`.
//!
//! [`ThemeSet`] holds the known themes ([`ThemeSet::builtin`], [`ThemeSet::load_dir`])
//! and [`ThemeSet::resolve`]s a name or path into a [`Theme`]; the TUI asks a theme for
//! [`Theme::slot`] colours and [`Theme::style`]s of [`Element`]s. [`honour_no_color`]
//! applies `NO_COLOR` and [`fallback`] turns a failed load into the default theme plus a
//! warning.
//!
//! Inside: `spec` is the file format ([`Slot`]s, [`Element`]s and their default styles,
//! the reader of one file); `set` the built-in and loaded themes, `base` inheritance,
//! `NO_COLOR` and the fallback; `error` the [`ThemeError`]s and [`Problem`]s, each with
//! file, line, column and key; this module [`Theme`], a theme resolved and ready to draw
//! with.

mod error;
mod set;
mod spec;

use std::path::Path;

use ratatui::style::{Color, Style};
use ratatui::widgets::BorderType;

pub use error::{Problem, ThemeError};
pub use set::{
    builtin_names, fallback, honour_no_color, honour_no_color_env, ThemeSet, DEFAULT_THEME,
};
pub use spec::{Element, Slot};

use set::{builtin_default_spec, BUILTIN_SOURCES};
use spec::ThemeSpec;

/// A fully resolved theme: every slot has a colour, every element a style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Theme {
    name: String,
    description: Option<String>,
    origin: String,
    dark: bool,
    no_color: bool,
    border_type: BorderType,
    slots: [Color; Slot::COUNT],
    styles: [Style; Element::COUNT],
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
        let mut styles = [Style::default(); Element::COUNT];
        for element in Element::ALL {
            styles[element.index()] = element
                .default_patch()
                .overlay(spec.elements[element.index()])
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
            styles: [Style::default(); Element::COUNT],
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

    /// The style of a UI element.
    pub fn style(&self, element: Element) -> Style {
        self.styles[element.index()]
    }
}
