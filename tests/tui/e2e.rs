//! The real binary in tmux: open the TUI on the embedded rehearsal cluster, start the
//! quickstart wave with keys, wait until every VM shows Verified, live-migrate one, quit,
//! and check that the terminal settings are exactly what they were before. Ignored by default
//! (`needs tmux`; `tools/test` installs tmux and runs them).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session on its own server (`-L NAME`): a session ending elsewhere never takes
/// down the server another test is starting a session on ("server exited unexpectedly").
struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux runs (apt-get install tmux)");
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A detached tmux session of `width`×`height` running `script`; killed when dropped.
fn start(prefix: &str, width: u16, height: u16, script: &str) -> Session {
    let name = format!("{prefix}-{}", std::process::id());
    let (w, h) = (width.to_string(), height.to_string());
    tmux(&[
        "-L",
        &name,
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        &w,
        "-y",
        &h,
        script,
    ]);
    Session(name)
}

fn screen(s: &Session) -> String {
    tmux(&["-L", &s.0, "capture-pane", "-p", "-t", &s.0])
}

/// Waits (bounded) until the screen shows `what`.
fn wait_for(s: &Session, what: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = screen(s);
        if text.contains(what) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "`{what}` not on screen within {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn keys(s: &Session, k: &str) {
    tmux(&["-L", &s.0, "send-keys", "-t", &s.0, k]);
}

#[test]
#[ignore = "needs tmux"]
fn quickstart_wave_from_the_keyboard_then_migrate_and_quit_cleanly() {
    assert!(
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "tmux is required for this test (apt-get install tmux)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_wavelift");
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/quickstart.toml");
    let before = dir.path().join("stty-before");
    let after = dir.path().join("stty-after");
    let journal = dir.path().join("journal.jsonl");
    let script = format!(
        "cd {root} && stty -g > {before} && WAVELIFT_LOG_DIR={logs} {bin} tui {plan} --speed 400 --journal {journal}; echo EXITED:$?; stty -g > {after} && echo STTY-SAVED; sleep 120",
        root = env!("CARGO_MANIFEST_DIR"),
        before = before.display(),
        after = after.display(),
        logs = dir.path().display(),
        plan = plan.display(),
        journal = journal.display(),
    );
    let s = start("wavelift-e2e", 160, 45, &script);

    wait_for(&s, "REHEARSAL", Duration::from_secs(30));
    wait_for(&s, "Pending 3", Duration::from_secs(30));
    keys(&s, "w"); // start the wave
    wait_for(&s, "Start wave w1?", Duration::from_secs(10));
    keys(&s, "y");
    let done = wait_for(&s, "Verified 3", Duration::from_secs(90));
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        assert!(
            done.lines()
                .any(|l| l.contains(vm) && l.contains("Verified")),
            "{vm} not Verified:\n{done}"
        );
    }
    keys(&s, "m"); // live-migrate the selected VM
    wait_for(&s, "Live-migrate shop-db-01?", Duration::from_secs(10));
    keys(&s, "y");
    keys(&s, "4"); // Migrations view
    wait_for(&s, "Succeeded", Duration::from_secs(60));
    keys(&s, "q");
    let end = wait_for(&s, "EXITED:", Duration::from_secs(20));
    assert!(end.contains("EXITED:0"), "{end}");
    // The alternate screen is gone and the tty is exactly as before (read once the shell
    // says `stty -g` has written it).
    wait_for(&s, "STTY-SAVED", Duration::from_secs(10));
    let b = std::fs::read_to_string(&before).expect("stty before");
    let a = std::fs::read_to_string(&after).expect("stty after");
    assert_eq!(b.trim(), a.trim(), "terminal settings changed");
    assert!(
        !end.contains("╭ VMs"),
        "the TUI screen is still shown:\n{end}"
    );
    // The TUI's journal (`--journal`): each VM's power-off and creation, as `run` writes.
    let j = std::fs::read_to_string(&journal).expect("journal");
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        let mine: Vec<serde_json::Value> = j
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["vm"] == vm)
            .collect();
        assert!(
            mine.iter().any(|e| e["verb"] == "power-off"),
            "{vm}: {mine:?}"
        );
        assert!(
            mine.iter()
                .any(|e| e["kind"] == "VirtualMachine" && e["result"] == "created"),
            "{vm}: {mine:?}"
        );
    }
}

/// Closing the terminal (the tmux session goes away: SIGHUP, then a dead tty) ends the TUI
/// within seconds instead of leaving it spinning on the hung-up terminal.
#[test]
#[ignore = "needs tmux"]
fn a_terminal_that_hangs_up_ends_the_tui() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let script = format!(
        "cd {root} && echo $$ > {pid} && WAVELIFT_LOG_DIR={logs} exec {bin} tui plans/quickstart.toml",
        root = env!("CARGO_MANIFEST_DIR"),
        pid = pidfile.display(),
        logs = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_wavelift"),
    );
    let s = start("wavelift-hup", 120, 40, &script);
    wait_for(&s, "REHEARSAL", Duration::from_secs(30));
    let pid = std::fs::read_to_string(&pidfile).expect("pid file");
    let proc_dir = Path::new("/proc").join(pid.trim());
    assert!(proc_dir.exists(), "the TUI runs");
    tmux(&["-L", &s.0, "kill-session", "-t", &s.0]);
    let start = Instant::now();
    // A zombie (state Z) has exited too: only its parent has not reaped it yet.
    let alive = || {
        std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while alive() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the TUI is still running 10 s after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
