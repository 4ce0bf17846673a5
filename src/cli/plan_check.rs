//! `wavelift plan check`: compiler-style text or JSON (schema in the README).

use super::{CheckFormat, EXIT_INVALID, EXIT_OK, EXIT_WARNINGS};
use crate::plan::{self, LocatedDiagnostic, Severity, Summary};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

/// The JSON document `plan check --format json` prints.
#[derive(Serialize)]
pub struct CheckReport<'a> {
    pub file: &'a str,
    pub valid: bool,
    pub errors: usize,
    pub warnings: usize,
    pub diagnostics: Vec<LocatedDiagnostic>,
    pub summary: Option<&'a Summary>,
}

pub fn run(path: &Path, format: CheckFormat, strict: bool) -> ExitCode {
    let checked = match plan::check_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let errors = checked.errors();
    let warnings = checked.warnings();
    let located = checked.located();
    let mut out = std::io::stdout().lock();
    let result = match format {
        CheckFormat::Json => {
            let report = CheckReport {
                file: &checked.file,
                valid: errors == 0,
                errors,
                warnings,
                diagnostics: located,
                summary: checked.summary.as_ref(),
            };
            serde_json::to_writer_pretty(&mut out, &report)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out))
        }
        CheckFormat::Text => {
            let color = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            write_text(
                &mut out,
                &checked.file,
                &located,
                checked.summary.as_ref(),
                errors,
                warnings,
                color,
            )
        }
    };
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: {e}");
        }
    }
    tracing::info!(file = %checked.file, errors, warnings, "plan checked");
    if errors > 0 {
        ExitCode::from(EXIT_INVALID)
    } else if strict && warnings > 0 {
        ExitCode::from(EXIT_WARNINGS)
    } else {
        ExitCode::from(EXIT_OK)
    }
}

fn write_text(
    out: &mut impl Write,
    file: &str,
    diags: &[LocatedDiagnostic],
    summary: Option<&Summary>,
    errors: usize,
    warnings: usize,
    color: bool,
) -> std::io::Result<()> {
    for d in diags {
        let text = d.render_text();
        if color {
            let (label, code) = match d.severity {
                Severity::Error => ("error", "\x1b[1;31m"),
                Severity::Warning => ("warning", "\x1b[1;33m"),
            };
            let text = text.replacen(label, &format!("{code}{label}\x1b[0m\x1b[1m"), 1);
            let text = text.replacen('\n', "\x1b[0m\n", 1);
            writeln!(out, "{text}")?;
        } else {
            writeln!(out, "{text}")?;
        }
    }
    if let Some(s) = summary {
        writeln!(out, "{file}: {s}")?;
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if errors > 0 {
        writeln!(
            out,
            "{file}: invalid: {}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    } else {
        writeln!(out, "{file}: ok: {}", plural(warnings, "warning"))
    }
}
