//! Logging, set up once per process: `tracing` to a file under the user's state directory
//! (`$XDG_STATE_HOME/wavelift/wavelift.log`, usually `~/.local/state/wavelift/`), never to the
//! terminal, so a TUI screen is never corrupted. The level comes from `WAVELIFT_LOG`
//! (an `EnvFilter` directive such as `debug` or `wavelift::sim=trace`; default `info`);
//! `WAVELIFT_LOG_DIR` overrides the directory.
//!
//! Logs and the kubeconfigs the rehearsal cluster writes may name hosts, users and
//! endpoints: the log file is created `0600`, a directory wavelift creates is `0700`, and the
//! default state directory is made `0700` if it is wider ([`ensure_state_dir`]).

use std::path::{Path, PathBuf};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Keeps the background log writer alive; drop it last (at the end of `main`).
pub struct LogGuard {
    _guard: Option<WorkerGuard>,
    pub path: Option<PathBuf>,
}

pub fn log_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WAVELIFT_LOG_DIR") {
        return Some(PathBuf::from(d));
    }
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("wavelift"))
}

/// Creates the state directory `dir` (from [`log_dir`]) `0700`. The default one
/// (`…/state/wavelift`) is wavelift's own and is made `0700` if it exists wider; one named by
/// `WAVELIFT_LOG_DIR` is only created that way, never changed (it may be shared).
pub fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    crate::fsio::create_private_dir(dir)?;
    if std::env::var_os("WAVELIFT_LOG_DIR").is_none() {
        crate::fsio::tighten_dir(dir)?;
    }
    Ok(())
}

/// Installs the global subscriber. Failing to create the log directory disables logging
/// rather than writing to the terminal.
pub fn init() -> LogGuard {
    let none = || LogGuard {
        _guard: None,
        path: None,
    };
    let Some(dir) = log_dir() else {
        return none();
    };
    if ensure_state_dir(&dir).is_err() {
        return none();
    }
    let path = dir.join("wavelift.log");
    let Ok(file) = crate::fsio::open_private_append(&path) else {
        return none();
    };
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_from_env("WAVELIFT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .is_ok();
    LogGuard {
        _guard: Some(guard),
        path: installed.then_some(path),
    }
}
