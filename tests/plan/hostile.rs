//! Plan and scenario files that are not regular files or are too large (issue 18): refused by
//! name with exit 2, under an address-space limit (`wavelift plan check /dev/zero` grew past
//! 7 GiB; a FIFO blocked forever).

use crate::common::bounded::{self, mkfifo, sparse};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn plans_that_are_devices_fifos_or_too_large_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    let fifo = dir.path().join("plan.toml");
    mkfifo(&fifo);
    let link = dir.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
    let big = dir.path().join("big.toml");
    sparse(&big, b"# a plan\n", 17 << 20);
    let cases = [
        (
            "/dev/zero".to_string(),
            "the plan is a character device, not a regular file; refused",
        ),
        (
            fifo.display().to_string(),
            "the plan is a FIFO (named pipe), not a regular file; refused",
        ),
        (link.display().to_string(), "the plan is a character device"),
        (
            big.display().to_string(),
            "the plan is larger than the 16 MiB limit (the file has 17 MiB); refused",
        ),
    ];
    for (path, message) in &cases {
        for cmd in [
            &["plan", "check", path.as_str()][..],
            &["run", path.as_str(), "--sim"],
            &["blast", "--plan", path.as_str(), "--sources", "plans"],
        ] {
            let r = bounded::wavelift(cmd, root(), &logs);
            assert_eq!(r.code(), 2, "{cmd:?}: {r:?}");
            assert!(
                r.stderr.contains(&format!("{path}: {message}")),
                "{cmd:?}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn scenarios_that_are_devices_fifos_or_too_large_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    let fifo = dir.path().join("scenario.toml");
    mkfifo(&fifo);
    let big = dir.path().join("big.toml");
    sparse(&big, b"# a scenario\n", 17 << 20);
    for (path, message) in [
        (
            "/dev/zero".to_string(),
            "the scenario is a character device",
        ),
        (
            fifo.display().to_string(),
            "the scenario is a FIFO (named pipe)",
        ),
        (
            big.display().to_string(),
            "the scenario is larger than the 16 MiB limit (the file has 17 MiB); refused",
        ),
    ] {
        let r = bounded::wavelift(
            &["sim", "serve", "--port", "0", "--scenario", &path],
            root(),
            &logs,
        );
        assert_eq!(r.code(), 2, "{r:?}");
        assert!(
            r.stderr.contains(&format!("{path}: {message}")),
            "{}",
            r.stderr
        );
    }
}
