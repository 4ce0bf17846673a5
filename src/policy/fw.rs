//! Firewall export parsers producing the ordered rule model of [`super::rules`].

use super::rules::RuleSet;

/// Parses `text` (shown to the user as `file`) when it is a firewall export this module
/// knows, detecting the format from the content; `None` for any other file.
pub fn parse(file: &str, text: &str) -> Option<RuleSet> {
    let _ = (file, text);
    None
}
