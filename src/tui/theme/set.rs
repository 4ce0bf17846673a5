//! Which theme applies: the built-in themes, the set of known themes (built-ins plus the
//! files of a theme directory), resolving a name or path through its `base` chain
//! (inheritance, cycles, completion from the built-in `default`), `NO_COLOR`, and the
//! fallback to `default` when a theme cannot be used. (Which theme a kube context gets
//! by default, `prod*` → `prod-red`, is `tui::setup::default_theme_for`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use super::error::{did_you_mean, quoted, Problem, ThemeError};
use super::spec::{parse_spec, theme_name_problem, ThemeSpec};
use super::Theme;

/// Name of the theme used when none is chosen, and by [`fallback`].
pub const DEFAULT_THEME: &str = "default";

/// The themes compiled into the binary: `(name, TOML text)`.
pub(super) const BUILTIN_SOURCES: [(&str, &str); 4] = [
    ("default", include_str!("../../../themes/default.toml")),
    ("light", include_str!("../../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../../themes/high-contrast.toml"),
    ),
    ("prod-red", include_str!("../../../themes/prod-red.toml")),
];

/// Names of the built-in themes.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_SOURCES.iter().map(|(name, _)| *name).collect()
}

pub(super) fn builtin_origin(name: &str) -> String {
    format!("(built-in) themes/{name}.toml")
}

/// The embedded default theme, parsed once. It is the root every theme without `base`
/// is completed from.
pub(super) fn builtin_default_spec() -> &'static ThemeSpec {
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
            let entry = match read_theme(&path) {
                Err(error) => Entry::Broken {
                    origin: origin.clone(),
                    error,
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
        let text = read_theme(path)?;
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

/// A theme file: a regular file of at most [`crate::fsio::THEME_MAX`] bytes, UTF-8.
fn read_theme(path: &Path) -> Result<String, ThemeError> {
    crate::fsio::read_bounded_string(path, crate::fsio::THEME_MAX, "the theme")
        .map_err(|e| ThemeError::io(path, e.into_io()))
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
    use crate::tui::theme::Slot;

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
}
