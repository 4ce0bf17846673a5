//! Logging, set up once per process: `tracing` to a file under the user's state directory
//! (`$XDG_STATE_HOME/wavelift/wavelift.log`, usually `~/.local/state/wavelift/`), never to the
//! terminal, so a TUI screen is never corrupted. The level comes from `WAVELIFT_LOG`
//! (an `EnvFilter` directive such as `debug` or `wavelift::sim=trace`; default `info`);
//! `WAVELIFT_LOG_DIR` overrides the directory.

use std::path::PathBuf;
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

/// Installs the global subscriber. Failing to create the log directory disables logging
/// rather than writing to the terminal.
pub fn init() -> LogGuard {
    let Some(dir) = log_dir() else {
        return LogGuard {
            _guard: None,
            path: None,
        };
    };
    if std::fs::create_dir_all(&dir).is_err() {
        return LogGuard {
            _guard: None,
            path: None,
        };
    }
    let appender = tracing_appender::rolling::never(&dir, "wavelift.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("WAVELIFT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .is_ok();
    LogGuard {
        _guard: Some(guard),
        path: installed.then(|| dir.join("wavelift.log")),
    }
}
