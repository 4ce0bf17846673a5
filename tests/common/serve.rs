//! `wavelift sim serve` as a child process for the cross-process tests: started with the
//! given arguments, it writes its kubeconfig into `dir`, and is killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct SimServer {
    child: Child,
    /// The kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
    /// What the server printed: its URL line, then the `export KUBECONFIG=…` line.
    pub banner: Vec<String>,
    logs: PathBuf,
}

impl SimServer {
    /// `wavelift sim serve ARGS --kubeconfig DIR/kubeconfig`, logging into `dir`; returns
    /// once the server printed that it serves.
    pub fn start(args: &[&str], dir: &Path) -> SimServer {
        let kubeconfig = dir.join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wavelift"))
            .args(["sim", "serve"])
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("WAVELIFT_LOG_DIR", dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("sim serve");
        let stdout = child.stdout.take().expect("stdout");
        let banner: Vec<String> = BufReader::new(stdout)
            .lines()
            .take(2)
            .map(|l| l.expect("utf8"))
            .collect();
        let server = SimServer {
            child,
            kubeconfig,
            banner,
            logs: dir.to_path_buf(),
        };
        assert!(
            server.banner.first().is_some_and(
                |l| l.starts_with("wavelift rehearsal cluster serving on http://127.0.0.1:")
            ),
            "sim serve did not start: {:?}",
            server.banner
        );
        server
    }

    /// A `wavelift` command against this server (through its kubeconfig), not yet run.
    pub fn wavelift(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wavelift"));
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("WAVELIFT_LOG_DIR", &self.logs);
        c
    }

    /// Runs a `wavelift` command against this server to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.wavelift(args).output().expect("run wavelift")
    }

    /// Runs the machine's `kubectl` against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl (the machine's /usr/bin/kubectl)")
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
