//! What can go wrong with a theme, said with the file, line, column and key: the
//! [`ThemeError`]s the loaders return, the [`Problem`]s of an invalid file, and the
//! helpers that word them (typo hints, escaping text taken from the file).

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::plan::span::LineIndex;

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

    pub(super) fn io(path: &Path, err: std::io::Error) -> Self {
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
pub(super) fn did_you_mean<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let input = input.to_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&input, &c.to_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The hint after an unknown key: " (did you mean `…`?)" when `input` looks like a typo
/// of one of `candidates`, else " (known {what}: …)" listing `listed`.
pub(super) fn unknown_hint(
    input: &str,
    candidates: &[&str],
    what: &str,
    listed: &[&str],
) -> String {
    match did_you_mean(input, candidates) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => format!(" (known {what}: {})", listed.join(", ")),
    }
}

/// Text taken from a theme file, made safe to print (no control characters).
pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// A key taken from a theme file, made safe to print in a dotted key path.
pub(super) fn escape_key(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Collects the problems of one file, converting byte offsets to line:column.
pub(super) struct Problems<'a> {
    text: &'a str,
    origin: &'a str,
    lines: LineIndex,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub(super) fn new(text: &'a str, origin: &'a str) -> Self {
        Problems {
            text,
            origin,
            lines: LineIndex::new(text),
            list: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn location(&self, offset: usize) -> (usize, usize) {
        let at = self.lines.position(self.text, offset);
        (at.line, at.column)
    }

    pub(super) fn push(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = self.location(span.start);
        self.list.push(Problem {
            origin: self.origin.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn into_result<T>(self, value: T) -> Result<T, ThemeError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ThemeError::Invalid {
                problems: self.list,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
