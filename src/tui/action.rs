//! What the operator (or the clock, or the terminal) asks of the TUI ([`Action`]) and
//! what the TUI asks of the outside world in return ([`Effect`]); the pure
//! [`super::update()`] goes from one to the other.

use super::app::View;
use super::theme::Theme;
use crate::engine::EngineRequest;

/// Something to do to the TUI state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    // navigation
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextView,
    PrevView,
    GoView(View),
    Enter,
    Escape,
    ToggleHelp,
    StartFilter,
    StartCommand,
    CycleSort,
    ReverseSort,
    NextTheme,
    // operator actions on the engine
    StartWave,
    TogglePause,
    CancelWave,
    CancelVm,
    RetryVm,
    RollbackVm,
    ConfirmPowerOff,
    RunChecks,
    Migrate,
    ExportReport,
    // leaving
    Quit,
    /// Ctrl-C: quit, asking first while VMs are in flight; a second one forces.
    Interrupt,
    /// Ctrl-Z.
    Suspend,
    // text input (filter, command line, typed confirmation)
    Char(char),
    Backspace,
    Complete,
    // confirmation dialogs
    Yes,
    No,
    // mouse
    Click {
        column: u16,
        row: u16,
    },
    ScrollUp,
    ScrollDown,
    // from the loop
    /// Wall clock, unix ms.
    Tick(i64),
    Resize(u16, u16),
    /// Run a command line (without the `:`).
    Command(String),
    /// A theme file loaded by the loop for `:theme PATH`.
    ThemeLoaded(Box<Theme>),
    ThemeFailed(String),
    /// The engine's event stream ended.
    EngineGone,
}

/// Something for the event loop to do on the TUI's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Engine(EngineRequest),
    Quit,
    Suspend,
    /// Write `contents` to `path`.
    ExportReport {
        path: String,
        contents: String,
    },
    /// Load a theme file (`:theme PATH`); answer with `ThemeLoaded` / `ThemeFailed`.
    LoadTheme(String),
}
