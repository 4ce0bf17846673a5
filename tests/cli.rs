//! The command line as a user meets it: help with examples, version, completions, exit codes,
//! and logging that never reaches the terminal.

use std::process::{Command, Output};

fn wavelift(args: &[&str], log_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wavelift"))
        .args(args)
        .env("WAVELIFT_LOG_DIR", log_dir)
        .env("WAVELIFT_LOG", "debug")
        .output()
        .expect("run wavelift")
}

#[test]
fn version_and_help_with_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = wavelift(&["--version"], dir.path());
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("wavelift "));
    for sub in [
        &["tui", "--help"][..],
        &["run", "--help"],
        &["plan", "check", "--help"],
        &["plan", "init", "--help"],
        &["verify", "--help"],
        &["blast", "--help"],
        &["migrate", "--help"],
        &["sim", "serve", "--help"],
        &["completions", "--help"],
    ] {
        let out = wavelift(sub, dir.path());
        assert!(out.status.success(), "{sub:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{sub:?} help has no example:\n{text}"
        );
    }
}

#[test]
fn completions_for_each_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef wavelift"),
        ("fish", "complete -c wavelift"),
    ] {
        let out = wavelift(&["completions", shell], dir.path());
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {marker} missing");
        assert!(text.contains("check"), "{shell}: subcommands missing");
    }
}

#[test]
fn unreadable_plan_is_exit_2_with_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = wavelift(&["plan", "check", "plans/does-not-exist.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plans/does-not-exist.toml"));
}

#[test]
fn logs_go_to_the_log_file_not_the_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = wavelift(&["plan", "check", "plans/quickstart.toml"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("INFO") && !stdout.contains("DEBUG"));
    let log = std::fs::read_to_string(dir.path().join("wavelift.log")).expect("log file written");
    assert!(log.contains("plan checked"), "log: {log}");
}

#[test]
fn blast_cli_reports_references_with_owners_and_writes_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("sources");
    std::fs::create_dir_all(src.join("dns")).expect("mkdir");
    std::fs::write(
        src.join("dns/corp.zone"),
        "$ORIGIN corp.example.internal.\n$TTL 300\nshop-db-01 IN A 192.0.2.15\nold IN A 192.0.2.150\n",
    )
    .expect("zone");
    let out = wavelift(
        &[
            "blast",
            "--plan",
            "plans/quickstart.toml",
            "--sources",
            src.to_str().expect("utf8"),
            "--vm",
            "shop-db-01",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("corp.zone:3"), "{text}");
    assert!(
        !text.contains("corp.zone:4"),
        "192.0.2.150 is not 192.0.2.15:\n{text}"
    );
    let json = dir.path().join("blast.json");
    let out = wavelift(
        &[
            "blast",
            "--plan",
            "plans/quickstart.toml",
            "--sources",
            src.to_str().expect("utf8"),
            "--format",
            "json",
            "--out",
            json.to_str().expect("utf8"),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report =
        wavelift::blast::BlastReport::from_json(&std::fs::read_to_string(&json).expect("json"))
            .expect("loads back");
    let _ = report;
    let bad = wavelift(
        &[
            "blast",
            "--plan",
            "plans/quickstart.toml",
            "--sources",
            "/nonexistent-dir",
        ],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[path = "common/serve.rs"]
#[allow(dead_code)] // this binary starts servers, it does not drive them
mod serve;

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The log file may name hosts and users: it is created 0600 (and an older 0644 one is made
/// 0600), in a state directory created 0700 (issue 18).
#[test]
fn the_log_file_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state/wavelift");
    let out = wavelift(&["plan", "check", "plans/quickstart.toml"], &state);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let log = state.join("wavelift.log");
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&dir.path().join("state")), 0o700);

    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = wavelift(&["plan", "check", "plans/quickstart.toml"], &state);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(mode(&log), 0o600, "an older log file is made private");
}

/// `sim serve` writes its kubeconfig 0600 in a directory it creates 0700; a kubeconfig left
/// 0644 by an older run is made 0600 before it is rewritten.
#[test]
fn the_sim_kubeconfig_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("new/state");
    {
        let server = serve::SimServer::start(&["--port", "0"], &state);
        assert_eq!(mode(&server.kubeconfig), 0o600);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&state.join("wavelift.log")), 0o600);
    }
    let old = state.join("kubeconfig");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let server = serve::SimServer::start(&["--port", "0"], &state);
    assert_eq!(mode(&server.kubeconfig), 0o600);
    let text = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    assert!(text.contains("server: http://127.0.0.1:"), "{text}");
}
