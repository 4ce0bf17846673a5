//! Helpers for the `wavelift tui` command: choosing the theme (flag, per-context
//! default, `NO_COLOR`, fallback with a visible warning) and loading a blast report.

use std::path::Path;

use super::app::TargetInfo;
use super::blast::{BlastData, BlastLoadError};
use super::theme::{fallback, honour_no_color, Theme, ThemeSet};

/// The theme a context gets when `--theme` is not given: contexts whose name starts with
/// `prod` get the red-accented `prod-red` theme, everything else `default`.
pub fn default_theme_for(target: &TargetInfo) -> &'static str {
    match target {
        TargetInfo::Context(c) if c.to_ascii_lowercase().starts_with("prod") => "prod-red",
        _ => "default",
    }
}

/// The themes `--theme NAME` and `:theme NAME` know: the built-ins plus the `*.toml`
/// files of `dir` (e.g. `themes/`) when it exists. A directory that cannot be read
/// gives the built-ins and a warning.
pub fn theme_set(dir: Option<&Path>) -> (ThemeSet, Option<String>) {
    match dir {
        Some(d) if d.is_dir() => match ThemeSet::load_dir(d) {
            Ok(set) => (set, None),
            Err(e) => (
                ThemeSet::builtin(),
                Some(format!("theme directory {}: {e}", d.display())),
            ),
        },
        _ => (ThemeSet::builtin(), None),
    }
}

/// Resolves the theme to start with: `requested` (name or path) or the context's
/// default; a theme that fails falls back to `default` with a warning (show it in
/// [`super::TuiOptions::banner`]); `no_color_env` is the value of `NO_COLOR`.
pub fn choose_theme(
    themes: &ThemeSet,
    requested: Option<&str>,
    target: &TargetInfo,
    no_color_env: Option<&str>,
) -> (Theme, Option<String>) {
    let name = requested.unwrap_or_else(|| default_theme_for(target));
    let (theme, warning) = fallback(themes.resolve(name));
    if let Some(w) = &warning {
        tracing::warn!("{w}");
    }
    tracing::info!(theme = theme.name(), origin = theme.origin(), "theme");
    (honour_no_color(theme, no_color_env), warning)
}

/// Reads `--blast FILE`.
pub fn load_blast(path: &Path) -> Result<BlastData, BlastLoadError> {
    let text =
        crate::fsio::read_bounded_string(path, crate::fsio::BLAST_REPORT_MAX, "the blast report")
            .map_err(|e| BlastLoadError::Io(e.into_io()))?;
    BlastData::from_json_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prod_contexts_get_the_red_theme() {
        let prod = TargetInfo::Context("prod-east".into());
        let sim = TargetInfo::Sim { kubeconfig: None };
        assert_eq!(default_theme_for(&prod), "prod-red");
        assert_eq!(default_theme_for(&sim), "default");
        let set = ThemeSet::builtin();
        let (t, w) = choose_theme(&set, None, &prod, None);
        assert_eq!((t.name(), w), ("prod-red", None));
        let (t, w) = choose_theme(&set, Some("nope"), &sim, None);
        assert_eq!(t.name(), "default");
        assert!(w.is_some_and(|w| w.contains("bad theme")));
        let (t, _) = choose_theme(&set, Some("light"), &sim, Some("1"));
        assert!(t.is_no_color());
    }
}
