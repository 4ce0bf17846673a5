//! Plan diagnostics: errors and warnings with a span, a stable code and a hint, rendered
//! like a compiler's (source line and caret) or as JSON for tools.

use super::span::{LineIndex, Position, Span};
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable, kebab-case identifier (`unknown-network`, `duplicate-ip`, …).
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// Most hints are fixed text: borrowed, not copied (a 10,000-VM plan can carry tens of
    /// thousands of warnings).
    pub hint: Option<Cow<'static, str>>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<Cow<'static, str>>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint.map(Cow::Owned);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A diagnostic resolved against its file: what the JSON output carries.
#[derive(Debug, Clone, Serialize)]
pub struct LocatedDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// The source line the diagnostic starts on.
    pub source_line: String,
    pub hint: Option<String>,
}

impl LocatedDiagnostic {
    pub fn new(d: &Diagnostic, file: &str, text: &str, index: &LineIndex) -> Self {
        let start = index.position(text, d.span.start);
        let end = index.position(text, d.span.end.max(d.span.start));
        LocatedDiagnostic {
            severity: d.severity,
            code: d.code,
            message: d.message.clone(),
            file: file.to_string(),
            line: start.line,
            column: start.column,
            end_line: end.line,
            end_column: end.column,
            source_line: index.line_text(text, start.line - 1).to_string(),
            hint: d.hint.as_deref().map(str::to_string),
        }
    }

    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    /// Compiler-style rendering: header, location, source line, caret, hint.
    pub fn render_text(&self) -> String {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        let caret_start = self.column - 1;
        let line_chars = self.source_line.chars().count();
        let rest = line_chars.saturating_sub(caret_start).max(1);
        let width = if self.end_line != self.line {
            rest // a multi-line span: underline to the end of its first line
        } else {
            self.end_column.saturating_sub(self.column).clamp(1, rest)
        };
        // Keep tabs in the prefix so the caret lines up under the text.
        let prefix: String = self
            .source_line
            .chars()
            .take(caret_start)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let mut out = format!(
            "{label}[{code}]: {msg}\n{pad}--> {file}:{line}:{col}\n{pad} |\n{line:>gutter$} | {src}\n{pad} | {prefix}{carets}\n",
            code = self.code,
            msg = self.message,
            file = self.file,
            line = self.line,
            col = self.column,
            src = self.source_line,
            carets = "^".repeat(width),
        );
        if let Some(h) = &self.hint {
            out.push_str(&format!("{pad} = hint: {h}\n"));
        }
        out
    }
}

/// Suggest the closest candidate for a misspelt name ("did you mean `vlan-210`?").
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&wrong.to_ascii_lowercase(), &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let text = "[plan]\nname = \"Bad Name\"\n";
        let idx = LineIndex::new(text);
        let start = text.find("\"Bad").unwrap();
        let d = Diagnostic::error("invalid-name", start..start + 10, "bad name")
            .with_hint("use lowercase");
        let l = LocatedDiagnostic::new(&d, "p.toml", text, &idx);
        assert_eq!((l.line, l.column), (2, 8));
        let r = l.render_text();
        assert!(r.contains("--> p.toml:2:8"), "{r}");
        assert!(r.contains("2 | name = \"Bad Name\""), "{r}");
        assert!(r.contains("  |        ^^^^^^^^^^\n"), "{r}");
        assert!(r.contains("= hint: use lowercase"), "{r}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("vlan-201", ["vlan-210", "vlan-300"]).as_deref(),
            Some("did you mean `vlan-210`?")
        );
        assert_eq!(did_you_mean("zzz", ["vlan-210"]), None);
    }
}
