//! Key bindings as data: one table ([`BINDINGS`]) from which the key lookup, the `?`
//! help overlay and the footer hints are all generated (kdash's `key_binding.rs` →
//! `help.rs`; k9s' dangerous/read-only flags). Changing a key here changes all three.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::Action;
use super::app::{App, InputMode, Popup, View};

/// A key with its modifiers (`SHIFT` is ignored for characters: `G` is `G`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn code(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

impl Key {
    /// Whether a terminal key event is this key.
    pub fn matches(&self, ev: &KeyEvent) -> bool {
        let strip = |m: KeyModifiers| {
            if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
                m - KeyModifiers::SHIFT
            } else {
                m
            }
        };
        self.code == ev.code && strip(self.mods) == strip(ev.modifiers)
    }
}

/// One row of the key table.
#[derive(Debug, Clone)]
pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written in the help and footer.
    pub label: &'static str,
    /// One word for the footer.
    pub hint: &'static str,
    pub action: Action,
    pub description: &'static str,
    /// Views where the binding applies; empty means every view.
    pub views: &'static [View],
    /// Changes the cluster in a way that is hard to undo: asks for confirmation and is
    /// disabled under `--read-only`.
    pub dangerous: bool,
    /// Shown in the footer (the help overlay shows every binding).
    pub footer: bool,
}

impl Binding {
    /// The first key of the label (`Tab/l/→` → `Tab`), for the footer.
    pub fn keys_short(&self) -> &'static str {
        match self.label.split('/').next() {
            Some(first) if !first.is_empty() => first,
            _ => self.label,
        }
    }

    pub fn applies_to(&self, view: View) -> bool {
        self.views.is_empty() || self.views.contains(&view)
    }
}

const LISTS: &[View] = &[View::Vms, View::Checks, View::Migrations];
const VM_ROWS: &[View] = &[View::Vms, View::Checks];
const WAVE_VIEWS: &[View] = &[View::Waves, View::Vms, View::Checks];

macro_rules! bind {
    ($keys:expr, $label:literal, $hint:literal, $action:expr, $desc:literal, $views:expr, $dangerous:expr, $footer:expr) => {
        Binding {
            keys: $keys,
            label: $label,
            hint: $hint,
            action: $action,
            description: $desc,
            views: $views,
            dangerous: $dangerous,
            footer: $footer,
        }
    };
}

/// The key table, in help-overlay order.
pub const BINDINGS: &[Binding] = &[
    bind!(
        &[k('?')],
        "?",
        "help",
        Action::ToggleHelp,
        "help: every key and command",
        &[],
        false,
        true
    ),
    bind!(
        &[k('q')],
        "q",
        "quit",
        Action::Quit,
        "quit (asks while VMs are in flight)",
        &[],
        false,
        true
    ),
    bind!(
        &[ctrl('c')],
        "Ctrl-c",
        "quit",
        Action::Interrupt,
        "quit; twice forces",
        &[],
        false,
        false
    ),
    bind!(
        &[ctrl('z')],
        "Ctrl-z",
        "suspend",
        Action::Suspend,
        "suspend to the shell (`fg` resumes)",
        &[],
        false,
        false
    ),
    bind!(
        &[code(KeyCode::Tab), k('l'), code(KeyCode::Right)],
        "Tab/l/→",
        "view",
        Action::NextView,
        "next view",
        &[],
        false,
        true
    ),
    bind!(
        &[code(KeyCode::BackTab), k('h'), code(KeyCode::Left)],
        "S-Tab/h/←",
        "view",
        Action::PrevView,
        "previous view",
        &[],
        false,
        false
    ),
    bind!(
        &[k('1')],
        "1",
        "waves",
        Action::GoView(View::Waves),
        "Waves view",
        &[],
        false,
        false
    ),
    bind!(
        &[k('2')],
        "2",
        "vms",
        Action::GoView(View::Vms),
        "VMs view",
        &[],
        false,
        false
    ),
    bind!(
        &[k('3')],
        "3",
        "checks",
        Action::GoView(View::Checks),
        "Checks view",
        &[],
        false,
        false
    ),
    bind!(
        &[k('4')],
        "4",
        "migrations",
        Action::GoView(View::Migrations),
        "Migrations view",
        &[],
        false,
        false
    ),
    bind!(
        &[k('5')],
        "5",
        "log",
        Action::GoView(View::Log),
        "Log view",
        &[],
        false,
        false
    ),
    bind!(
        &[k('j'), code(KeyCode::Down)],
        "j/↓",
        "move",
        Action::Down,
        "down",
        &[],
        false,
        false
    ),
    bind!(
        &[k('k'), code(KeyCode::Up)],
        "k/↑",
        "move",
        Action::Up,
        "up",
        &[],
        false,
        false
    ),
    bind!(
        &[k('g'), code(KeyCode::Home)],
        "g/Home",
        "top",
        Action::Top,
        "first row (Log: oldest line)",
        &[],
        false,
        false
    ),
    bind!(
        &[k('G'), code(KeyCode::End)],
        "G/End",
        "bottom",
        Action::Bottom,
        "last row (Log: follow the tail)",
        &[],
        false,
        false
    ),
    bind!(
        &[code(KeyCode::PageDown), ctrl('d')],
        "PgDn/Ctrl-d",
        "page",
        Action::PageDown,
        "page down",
        &[],
        false,
        false
    ),
    bind!(
        &[code(KeyCode::PageUp), ctrl('u')],
        "PgUp/Ctrl-u",
        "page",
        Action::PageUp,
        "page up",
        &[],
        false,
        false
    ),
    bind!(
        &[code(KeyCode::Enter)],
        "Enter",
        "open",
        Action::Enter,
        "open the wave under the cursor",
        &[View::Waves],
        false,
        true
    ),
    bind!(
        &[k('/')],
        "/",
        "filter",
        Action::StartFilter,
        "filter rows (name, IP, network, node, step; `failed`)",
        LISTS,
        false,
        true
    ),
    bind!(
        &[k('s')],
        "s",
        "sort",
        Action::CycleSort,
        "sort by plan order, name, step, progress",
        VM_ROWS,
        false,
        false
    ),
    bind!(
        &[k('S')],
        "S",
        "reverse",
        Action::ReverseSort,
        "reverse the sort",
        VM_ROWS,
        false,
        false
    ),
    bind!(
        &[k(':')],
        ":",
        "command",
        Action::StartCommand,
        "command line (`:help` lists commands)",
        &[],
        false,
        true
    ),
    bind!(
        &[code(KeyCode::Esc)],
        "Esc",
        "back",
        Action::Escape,
        "clear the filter, close a pop-up or the banner",
        &[],
        false,
        false
    ),
    bind!(
        &[k('w')],
        "w",
        "start",
        Action::StartWave,
        "start the wave",
        WAVE_VIEWS,
        true,
        true
    ),
    bind!(
        &[k('p')],
        "p",
        "pause",
        Action::TogglePause,
        "pause / resume the wave",
        WAVE_VIEWS,
        false,
        true
    ),
    bind!(
        &[k('C')],
        "C",
        "cancel",
        Action::CancelWave,
        "cancel the wave before cutovers (type its name)",
        WAVE_VIEWS,
        true,
        false
    ),
    bind!(
        &[k('x')],
        "x",
        "cancel-vm",
        Action::CancelVm,
        "cancel the selected VM before its cutover (type its name)",
        VM_ROWS,
        true,
        false
    ),
    bind!(
        &[k('r')],
        "r",
        "retry",
        Action::RetryVm,
        "retry the selected failed VM",
        VM_ROWS,
        false,
        true
    ),
    bind!(
        &[k('o')],
        "o",
        "poweroff",
        Action::ConfirmPowerOff,
        "confirm the source VM is powered off (manual power-off)",
        VM_ROWS,
        true,
        true
    ),
    bind!(
        &[k('c')],
        "c",
        "checks",
        Action::RunChecks,
        "run the selected VM's checks now",
        VM_ROWS,
        false,
        true
    ),
    bind!(
        &[k('m')],
        "m",
        "migrate",
        Action::Migrate,
        "live-migrate the selected VM",
        &[View::Vms, View::Checks, View::Migrations],
        true,
        true
    ),
    bind!(
        &[k('X')],
        "X",
        "rollback",
        Action::RollbackVm,
        "roll back the selected VM (type its name to confirm)",
        VM_ROWS,
        true,
        true
    ),
    bind!(
        &[k('e')],
        "e",
        "export",
        Action::ExportReport,
        "export the wave's verify report (Markdown)",
        WAVE_VIEWS,
        false,
        true
    ),
    bind!(
        &[k('t')],
        "t",
        "theme",
        Action::NextTheme,
        "next theme",
        &[],
        false,
        false
    ),
];

/// The binding of an action, if the table has one.
pub fn binding_of(action: &Action) -> Option<&'static Binding> {
    BINDINGS.iter().find(|b| &b.action == action)
}

/// Whether an action is dangerous (per the table).
pub fn is_dangerous(action: &Action) -> bool {
    binding_of(action).is_some_and(|b| b.dangerous)
}

/// The bindings of the current view's footer; dangerous ones are left out under
/// `--read-only`.
pub fn footer_bindings(view: View, read_only: bool) -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(move |b| b.footer && b.applies_to(view) && !(read_only && b.dangerous))
}

/// Maps a terminal key to an action, given where input goes (popup, text field, view).
pub fn action_for(app: &App, ev: KeyEvent) -> Option<Action> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl_c = ev.code == KeyCode::Char('c') && ev.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl_c {
        return Some(Action::Interrupt);
    }
    match &app.ui().popup {
        Some(Popup::Confirm(c)) if c.type_to_confirm.is_some() => return text_key(ev),
        Some(Popup::Confirm(_)) => {
            return match ev.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => Some(Action::Yes),
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                    Some(Action::No)
                }
                _ => None,
            };
        }
        Some(Popup::Help { .. }) => {
            return match ev.code {
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Enter => {
                    Some(Action::Escape)
                }
                KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
                KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
                KeyCode::PageDown => Some(Action::PageDown),
                KeyCode::PageUp => Some(Action::PageUp),
                KeyCode::Char('g') | KeyCode::Home => Some(Action::Top),
                _ => None,
            };
        }
        Some(Popup::Message { .. }) => return Some(Action::Escape),
        None => {}
    }
    match app.ui().input {
        InputMode::Filter | InputMode::Command => text_key(ev),
        InputMode::Normal => BINDINGS
            .iter()
            .find(|b| b.applies_to(app.ui().view) && b.keys.iter().any(|key| key.matches(&ev)))
            .map(|b| b.action.clone()),
    }
}

/// Keys while typing: characters, Backspace, Tab (complete), Enter, Esc.
fn text_key(ev: KeyEvent) -> Option<Action> {
    match ev.code {
        KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => Some(Action::Char(c)),
        KeyCode::Backspace => Some(Action::Backspace),
        KeyCode::Tab => Some(Action::Complete),
        KeyCode::Enter => Some(Action::Enter),
        KeyCode::Esc => Some(Action::Escape),
        _ => None,
    }
}

/// The help overlay's lines: `(keys, description, views, note)`; `note` says
/// "dangerous: asks first" or "disabled: read-only".
pub fn help_rows(read_only: bool) -> Vec<(&'static str, &'static str, String, &'static str)> {
    BINDINGS
        .iter()
        .map(|b| {
            let views = if b.views.is_empty() {
                "all".to_string()
            } else {
                b.views
                    .iter()
                    .map(|v| v.title())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let note = match (b.dangerous, read_only) {
                (true, true) => "disabled: read-only",
                (true, false) => "dangerous: asks first",
                _ => "",
            };
            (b.label, b.description, views, note)
        })
        .collect()
}
