//! The `wavelift` binary as a child process under an address-space limit (`RLIMIT_AS`, set
//! with `setrlimit` between fork and exec): a hostile input that makes it allocate more fails
//! the test by the child dying (an allocation failure aborts), not by a timing. A watchdog
//! kills a child still running after [`HANG`] so a hang (a FIFO read) fails the test instead
//! of blocking the suite; it is a guard, not an assertion about speed.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The address space the child gets: several times what any command needs (about 200 MiB
/// for these), far below what the bombs of issue 18 asked for (2 to 512 GiB).
pub const AS_LIMIT: u64 = 768 << 20;

/// A child still running after this long is killed and the test fails.
pub const HANG: Duration = Duration::from_secs(300);

/// What a bounded run gave.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code; a child killed by a signal (an abort on a failed allocation) fails.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(c) => c,
            None => panic!("killed by a signal (memory limit?): {self:?}"),
        }
    }
}

/// `wavelift ARGS` in `cwd` with `WAVELIFT_LOG_DIR=log_dir`, stdin closed, under
/// [`AS_LIMIT`].
pub fn wavelift(args: &[&str], cwd: &Path, log_dir: &Path) -> Run {
    wavelift_with(args, cwd, log_dir, AS_LIMIT)
}

/// [`wavelift`] with another address-space limit.
pub fn wavelift_with(args: &[&str], cwd: &Path, log_dir: &Path, limit: u64) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wavelift"));
    c.args(args)
        .current_dir(cwd)
        .env("WAVELIFT_LOG_DIR", log_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().expect("spawn wavelift");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wavelift {args:?} still running after {HANG:?} (a hang): killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    Run {
        status,
        stdout,
        stderr,
    }
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: a valid C string; mkfifo only reads it.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

/// A sparse file of `len` bytes (zeros, no disk used) starting with `head`.
pub fn sparse(path: &Path, head: &[u8], len: u64) {
    std::fs::write(path, head).expect("write head");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_len(len).expect("set_len");
}
