//! `--theme` naming something that is not a theme file (issue 18): `/dev/zero` was read for
//! 2 GiB before the terminal was set up, a FIFO blocked forever. Now refused by name (the TUI
//! falls back to the default theme with that warning, logged), under an address-space limit.
//! Without a terminal the TUI then stops at the terminal set-up, which shows the theme was
//! dealt with before it.

use crate::common::bounded::{self, mkfifo, sparse};
use std::path::Path;

#[test]
fn a_theme_that_is_a_device_a_fifo_or_too_large_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.toml");
    mkfifo(&fifo);
    let big = dir.path().join("big.toml");
    sparse(&big, b"name = \"big\"\n", 2 << 20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (i, (theme, message)) in [
        (
            "/dev/zero".to_string(),
            "the theme is a character device, not a regular file",
        ),
        (
            fifo.display().to_string(),
            "the theme is a FIFO (named pipe), not a regular file",
        ),
        (
            big.display().to_string(),
            "the theme is larger than the 1 MiB limit (the file has 2 MiB); refused",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let logs = dir.path().join(format!("logs-{i}"));
        let r = bounded::wavelift(
            &["tui", "plans/quickstart.toml", "--theme", &theme],
            root,
            &logs,
        );
        assert_eq!(r.code(), 2, "{r:?}");
        assert!(
            r.stderr.contains("cannot set up the terminal"),
            "{}",
            r.stderr
        );
        let log = std::fs::read_to_string(logs.join("wavelift.log")).expect("log");
        assert!(
            log.contains(&format!(
                "bad theme, using the built-in `default` theme instead: {theme}: cannot read \
                 theme file: {message}"
            )),
            "{log}"
        );
    }
}
