//! Reading a spanned TOML tree (`toml::de::DeTable`): the pieces the plan reader
//! (`plan::check_str`, `plan::read`) and the theme reader (`tui::theme::spec`) share.
//!
//! Both readers parse with spans, so that every problem points at a line and column
//! (computed by [`crate::plan::span::LineIndex`]), report every syntax error at once,
//! and walk tables entry by entry to point at a bad key. Each reader words its own
//! messages: the plan says "must be a string, found an integer", a theme "expected a
//! string, found integer"; both wordings are pinned by tests, so naming a value's type
//! stays with each reader.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A value with the byte range it was written at.
pub type Value<'i> = toml::Spanned<DeValue<'i>>;

/// A TOML syntax error: where, and what the parser said (trimmed; may span lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte range of the error (`0..0` when the parser gives none).
    pub span: Range<usize>,
    /// The parser's message, without leading or trailing white space.
    pub message: String,
}

/// Parses `text` into a spanned tree, with every syntax error. After a syntax error the
/// tree is the parser's best-effort guess: report the errors, not what the tree holds.
pub fn parse(text: &str) -> (toml::Spanned<DeTable<'_>>, Vec<SyntaxError>) {
    let (root, errors) = DeTable::parse_recoverable(text);
    let errors = errors
        .iter()
        .map(|e| SyntaxError {
            span: e.span().unwrap_or(0..0),
            message: e.message().trim().to_string(),
        })
        .collect();
    (root, errors)
}

/// The entries of a table in file order: the key, the key's span, the value.
pub fn entries<'a, 'i>(
    table: &'a DeTable<'i>,
) -> impl Iterator<Item = (&'a str, Range<usize>, &'a Value<'i>)> {
    table
        .iter()
        .map(|(key, value)| (key.get_ref().as_ref(), key.span(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_key_spans_in_file_order() {
        let text = "b = 1\na = \"x\"\n";
        let (root, errors) = parse(text);
        assert!(errors.is_empty());
        let got: Vec<(&str, &str)> = entries(root.get_ref())
            .map(|(key, span, _)| (key, &text[span]))
            .collect();
        assert_eq!(got, [("b", "b"), ("a", "a")]);
    }

    #[test]
    fn syntax_errors_have_a_span_and_a_trimmed_message() {
        let (_, errors) = parse("a = \n");
        assert!(!errors.is_empty());
        for e in errors {
            assert!(!e.message.is_empty());
            assert_eq!(e.message, e.message.trim());
        }
    }
}
