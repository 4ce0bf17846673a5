//! The `:` command line: parsing (`:wave w2`, `:migrate pay-db-01`, `:theme light`, `:q`)
//! and `Tab` completion of command names, VM names, waves, themes and views.

use super::app::{App, SortKey, View};

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    Wave(String),
    View(View),
    Start,
    Pause,
    Resume,
    Cancel,
    CancelVm(String),
    IgnoreWindow,
    Retry(String),
    Rollback(String),
    PowerOff(String),
    Checks(String),
    Migrate(String),
    Theme(String),
    Sort(SortKey),
    Filter(String),
    Export,
}

/// What an argument names (for completion and validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Vm,
    Wave,
    Theme,
    View,
    Sort,
    Text,
}

/// Every command: `(name, aliases, argument, description)`; shown by `:help` / `?`.
pub const COMMANDS: &[(&str, &[&str], Arg, &str)] = &[
    (
        "quit",
        &["q", "q!"],
        Arg::None,
        "quit (asks while VMs are in flight)",
    ),
    ("help", &["h"], Arg::None, "the key and command list"),
    ("wave", &["w"], Arg::Wave, "switch to a wave: `:wave w2`"),
    ("view", &[], Arg::View, "switch view: `:view checks`"),
    (
        "start",
        &[],
        Arg::None,
        "start the current wave (asks first)",
    ),
    ("pause", &[], Arg::None, "pause the current wave"),
    ("resume", &[], Arg::None, "resume the current wave"),
    (
        "cancel",
        &[],
        Arg::None,
        "cancel the current wave (type its name to confirm)",
    ),
    (
        "cancel-vm",
        &[],
        Arg::Vm,
        "cancel one VM before its cutover: `:cancel-vm NAME` (type its name to confirm)",
    ),
    (
        "ignore-window",
        &[],
        Arg::None,
        "start the current wave's cutovers outside its window (type its name to confirm)",
    ),
    ("retry", &[], Arg::Vm, "retry a failed VM: `:retry NAME`"),
    (
        "rollback",
        &[],
        Arg::Vm,
        "roll back a VM (type its name to confirm)",
    ),
    (
        "poweroff",
        &[],
        Arg::Vm,
        "confirm a VM's source is powered off",
    ),
    ("checks", &[], Arg::Vm, "run a VM's checks now"),
    (
        "migrate",
        &[],
        Arg::Vm,
        "live-migrate a VM: `:migrate NAME` (asks first)",
    ),
    ("theme", &[], Arg::Theme, "switch theme: `:theme light`"),
    (
        "sort",
        &[],
        Arg::Sort,
        "sort rows: plan, name, step, progress",
    ),
    ("filter", &[], Arg::Text, "filter rows (same as `/`)"),
    (
        "export",
        &[],
        Arg::None,
        "export the wave's verify report (Markdown)",
    ),
];

fn lookup(word: &str) -> Option<(&'static str, Arg)> {
    COMMANDS
        .iter()
        .find(|(name, aliases, _, _)| *name == word || aliases.contains(&word))
        .map(|(name, _, arg, _)| (*name, *arg))
}

/// Parses a command line (without the leading `:`). VM and wave names are checked
/// against the app; errors read as a one-line message with a suggestion.
pub fn parse(app: &App, line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    if word.is_empty() {
        return Err("empty command; `:help` lists commands".to_string());
    }
    let Some((name, _)) = lookup(word) else {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.0).collect();
        return Err(format!(
            "unknown command `{word}`{}",
            suggest(word, names.iter().copied())
        ));
    };
    let need = |what: &str| -> Result<String, String> {
        if rest.is_empty() {
            Err(format!("`:{name}` needs {what}"))
        } else {
            Ok(rest.to_string())
        }
    };
    let vm = || -> Result<String, String> {
        let v = need("a VM name")?;
        if app.fleet().vm_index(&v).is_some() {
            Ok(v)
        } else {
            Err(format!(
                "no VM `{v}` in the plan{}",
                suggest(&v, app.fleet().vms().iter().map(|x| x.name.as_str()))
            ))
        }
    };
    Ok(match name {
        "quit" => Command::Quit,
        "help" => Command::Help,
        "wave" => {
            let w = need("a wave name")?;
            if !app.fleet().waves().iter().any(|x| x.name == w) {
                return Err(format!(
                    "no wave `{w}`{}",
                    suggest(&w, app.fleet().waves().iter().map(|x| x.name.as_str()))
                ));
            }
            Command::Wave(w)
        }
        "view" => {
            let v = need("a view name")?;
            Command::View(
                View::parse(&v)
                    .ok_or_else(|| format!("no view `{v}`: waves, vms, checks, migrations, log"))?,
            )
        }
        "start" => Command::Start,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "cancel" => Command::Cancel,
        "cancel-vm" => Command::CancelVm(vm()?),
        "ignore-window" => Command::IgnoreWindow,
        "retry" => Command::Retry(vm()?),
        "rollback" => Command::Rollback(vm()?),
        "poweroff" => Command::PowerOff(vm()?),
        "checks" => Command::Checks(vm()?),
        "migrate" => Command::Migrate(vm()?),
        "theme" => Command::Theme(need("a theme name or path")?),
        "sort" => Command::Sort(match need("a sort key")?.as_str() {
            "plan" => SortKey::Plan,
            "name" => SortKey::Name,
            "step" => SortKey::Step,
            "progress" => SortKey::Progress,
            other => return Err(format!("no sort key `{other}`: plan, name, step, progress")),
        }),
        "filter" => Command::Filter(rest.to_string()),
        _ => Command::Export,
    })
}

fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Completes the last word of a command line: returns the new line and, when the
/// completion is ambiguous, the candidates (at most 12).
pub fn complete(app: &App, line: &str) -> (String, Vec<String>) {
    let (head, word, is_arg) = match line.rsplit_once(' ') {
        Some((h, w)) => (format!("{h} "), w, true),
        None => (String::new(), line, false),
    };
    let candidates: Vec<String> = if !is_arg {
        COMMANDS.iter().map(|c| c.0.to_string()).collect()
    } else {
        let cmd = head.split_whitespace().next().unwrap_or("");
        match lookup(cmd).map(|(_, a)| a).unwrap_or(Arg::None) {
            Arg::Vm => {
                // VMs of the current wave first.
                let wave = app.ui().wave;
                let mut names: Vec<String> = app
                    .fleet()
                    .vms()
                    .iter()
                    .filter(|v| v.wave == wave)
                    .map(|v| v.name.clone())
                    .collect();
                if !names.iter().any(|n| n.starts_with(word)) {
                    names = app.fleet().vms().iter().map(|v| v.name.clone()).collect();
                }
                names
            }
            Arg::Wave => app.fleet().waves().iter().map(|w| w.name.clone()).collect(),
            Arg::Theme => app.session().themes.names(),
            Arg::View => View::ALL
                .iter()
                .map(|v| v.title().to_ascii_lowercase())
                .collect(),
            Arg::Sort => ["plan", "name", "step", "progress"]
                .map(str::to_string)
                .to_vec(),
            Arg::None | Arg::Text => Vec::new(),
        }
    };
    let matching: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.starts_with(word))
        .collect();
    match matching.len() {
        0 => (line.to_string(), Vec::new()),
        1 => {
            let space = if is_arg { "" } else { " " };
            (format!("{head}{}{space}", matching[0]), Vec::new())
        }
        _ => {
            let prefix = common_prefix(&matching);
            let line = format!("{head}{prefix}");
            (line, matching.into_iter().take(12).collect())
        }
    }
}

fn common_prefix(words: &[String]) -> String {
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut end = first.len();
    for w in &words[1..] {
        end = first
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(end);
    }
    first[..end].to_string()
}
