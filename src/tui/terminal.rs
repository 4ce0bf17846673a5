//! Terminal setup and, above all, restoration: raw mode and the alternate screen are
//! undone on quit (the guard's `Drop`), on panic (a panic hook that restores before the
//! message is printed), on SIGTERM/SIGHUP (the loop returns, the guard drops) and around
//! Ctrl-Z (restore, stop with SIGTSTP, re-enter on `fg`).

use std::io::{self, Stdout};
use std::sync::Once;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;

/// The real terminal.
pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode, alternate screen, mouse capture, hidden cursor.
pub fn enter() -> io::Result<()> {
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture, Hide)?;
    Ok(())
}

/// Undoes [`enter`]; safe to call more than once, and best effort (every step is tried).
pub fn leave() -> io::Result<()> {
    let screen = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        Show
    );
    let raw = disable_raw_mode();
    screen.and(raw)
}

/// Installs (once per process) a panic hook that restores the terminal first, so the
/// panic message is readable and the shell usable.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = leave();
            previous(info);
        }));
    });
}

/// Owns the terminal while the TUI is up; restores it when dropped.
pub struct TerminalGuard {
    pub terminal: Tui,
}

impl TerminalGuard {
    pub fn new() -> io::Result<TerminalGuard> {
        install_panic_hook();
        enter()?;
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                let _ = leave();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = leave();
    }
}

/// Ctrl-Z: restore the terminal, stop the process like a cooked-mode Ctrl-Z would, and
/// take the terminal back when the shell resumes us (`fg`).
pub fn suspend(terminal: &mut Tui) -> io::Result<()> {
    leave()?;
    #[cfg(unix)]
    {
        // Raw mode disables the terminal's own SIGTSTP on Ctrl-Z, so send it ourselves.
        // No handler is installed for SIGTSTP: the default action stops the process.
        signal_hook::low_level::raise(signal_hook::consts::SIGTSTP)?;
    }
    enter()?;
    terminal.clear()
}
