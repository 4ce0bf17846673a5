//! The wave plan: model, TOML parsing with spans, validation and lints (`wavelift plan check`).
//!
//! ```no_run
//! let checked = wavelift::plan::check_file("plans/quickstart.toml".as_ref()).unwrap();
//! for d in checked.located() {
//!     eprint!("{}", d.render_text());
//! }
//! let plan = checked.plan.expect("valid plan");
//! ```

pub mod check;
pub(crate) mod diag;
pub mod estimate;
pub(crate) mod mac;
pub(crate) mod model;
pub(crate) mod quantity;
mod read;
pub(crate) mod span;
pub(crate) mod summary;
pub mod synth;
pub(crate) mod time;
mod validate;

pub use diag::{Diagnostic, LocatedDiagnostic, Severity};
pub use model::*;
pub use summary::Summary;
/// The plan's syntax rules the inventory import must produce text for.
pub(crate) use validate::{is_backing_file, is_uuid};

use span::LineIndex;
use std::path::Path;

/// The result of checking one plan file.
#[derive(Debug)]
pub struct Checked {
    /// The file name used in diagnostics.
    pub file: String,
    pub text: String,
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The plan, present only when there is no error.
    pub plan: Option<Plan>,
    /// Counts, computed even when the plan has errors (from what could be read).
    pub summary: Option<Summary>,
}

impl Checked {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// Diagnostics with file, line and column resolved.
    pub fn located(&self) -> Vec<LocatedDiagnostic> {
        let index = LineIndex::new(&self.text);
        self.diagnostics
            .iter()
            .map(|d| LocatedDiagnostic::new(d, &self.file, &self.text, &index))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not read: missing, not a regular file, larger than [`crate::fsio::PLAN_MAX`].
    #[error(transparent)]
    Read(#[from] crate::fsio::InputError),
}

/// Reads and checks a plan file (a regular file of at most [`crate::fsio::PLAN_MAX`] bytes).
pub fn check_file(path: &Path) -> Result<Checked, LoadError> {
    let bytes = crate::fsio::read_bounded(path, crate::fsio::PLAN_MAX, "the plan")?;
    Ok(check_bytes(&bytes, &path.display().to_string()))
}

/// Checks plan bytes; text that is not UTF-8 is an error at the first bad byte.
pub fn check_bytes(bytes: &[u8], file: &str) -> Checked {
    match std::str::from_utf8(bytes) {
        Ok(text) => check_str(text, file),
        Err(e) => {
            let good = e.valid_up_to();
            let text = String::from_utf8_lossy(bytes).into_owned();
            // Lossy decoding keeps the valid prefix byte-identical, so the offset still holds.
            Checked {
                file: file.to_string(),
                diagnostics: vec![Diagnostic::error(
                    "not-utf8",
                    good..good + 1,
                    "the plan is not valid UTF-8",
                )
                .with_hint("save the file as UTF-8")],
                text,
                plan: None,
                summary: None,
            }
        }
    }
}

/// Parses and validates plan text. All problems are reported in one pass.
pub fn check_str(text: &str, file: &str) -> Checked {
    let (root, errors) = crate::toml_spans::parse(text);
    let mut diagnostics: Vec<Diagnostic> = errors
        .into_iter()
        .map(|e| {
            let span = e.span;
            let msg = e.message;
            let first = msg.lines().next().unwrap_or("invalid TOML").to_string();
            let rest: Vec<&str> = msg
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            Diagnostic::error("toml-syntax", span, first)
                .with_hint_opt((!rest.is_empty()).then(|| rest.join("; ")))
        })
        .collect();
    if !diagnostics.is_empty() {
        // The tree after a syntax error is a best-effort guess: report syntax only.
        sort(&mut diagnostics);
        return Checked {
            file: file.to_string(),
            text: text.to_string(),
            diagnostics,
            plan: None,
            summary: None,
        };
    }
    let mut reader = read::Reader::new();
    // The reader takes the tree: it drops each `[[vm]]` table as soon as it is read.
    let plan = reader.read(root);
    diagnostics = reader.diags;
    validate::validate(&plan, &mut diagnostics);
    sort(&mut diagnostics);
    let summary = Summary::of(&plan);
    let ok = !diagnostics.iter().any(|d| d.is_error());
    Checked {
        file: file.to_string(),
        text: text.to_string(),
        diagnostics,
        plan: ok.then_some(plan),
        summary: Some(summary),
    }
}

fn sort(d: &mut [Diagnostic]) {
    d.sort_by(|a, b| (a.span.start, a.severity, a.code).cmp(&(b.span.start, b.severity, b.code)));
}
