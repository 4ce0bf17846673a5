//! Reading input files without trusting them, and writing files that may hold secrets.
//!
//! Every file wavelift reads (plans, themes, scenarios, inventory exports, vlan maps, owners
//! files, baselines, blast reports, and every file a blast scan reads) goes through
//! [`open_regular`] or [`read_bounded`]:
//!
//! - the path is resolved (symlinks followed) and must be a **regular file**: a FIFO would
//!   block forever, `/dev/zero` never ends, other devices have side effects on open. The
//!   check is made before opening and again (`fstat`) on the opened descriptor, which is
//!   opened non-blocking, so a file swapped for a FIFO in between is refused, not waited on;
//! - it is read with a **size limit** (the constants below): a larger file is refused with an
//!   error naming the file and the limit, before anything is read when its size says so, and
//!   after at most `limit + 1` bytes when it grows while being read.
//!
//! Change a limit here; the README's "Limits" section lists them all (with the parser
//! limits kept next to their parsers: xlsx sheets in `inventory/table.rs`, DNS zones in
//! `blast/zone.rs`).
//!
//! Files that may hold secrets (the kubeconfigs the rehearsal cluster writes, the log file)
//! are created `0600` in a `0700` directory: [`write_private`], [`open_private_append`],
//! [`create_private_dir`].

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// A wave plan (`plan check`, `run`, `tui`, `verify`, `migrate`, `blast --plan`, `sim serve`).
pub const PLAN_MAX: u64 = 16 * MIB;
/// A theme file (`--theme PATH`, `themes/*.toml`).
pub const THEME_MAX: u64 = MIB;
/// A sim scenario (`sim serve --scenario`).
pub const SCENARIO_MAX: u64 = 16 * MIB;
/// A verification baseline (`verify --baseline`).
pub const BASELINE_MAX: u64 = 64 * MIB;
/// A blast report loaded into the TUI (`tui --blast`).
pub const BLAST_REPORT_MAX: u64 = 64 * MIB;
/// An RVTools workbook (`.xlsx`), compressed size; what it expands to is limited in
/// `inventory/table.rs`.
pub const XLSX_MAX: u64 = 256 * MIB;
/// One RVTools per-tab CSV file.
pub const INVENTORY_CSV_MAX: u64 = 256 * MIB;
/// A govc JSON inventory (`govc vm.info -json -r`).
pub const GOVC_JSON_MAX: u64 = 256 * MIB;
/// A `--vlan-map` CSV.
pub const VLAN_MAP_MAX: u64 = 16 * MIB;
/// A blast owners file (`--owners`, `OWNERS`).
pub const OWNERS_MAX: u64 = 16 * MIB;
/// A blast source file up to this size is read whole (and parsed by the structured parsers:
/// zone, firewall, Prometheus, load balancers); a larger text file is streamed through the
/// literal scan in windows of a few MiB, never held whole.
pub const SCAN_WHOLE_MAX: u64 = 64 * MIB;
/// One file pulled in by a zone's `$INCLUDE` (held while it is parsed, up to 8 deep).
pub const ZONE_INCLUDE_MAX: u64 = 32 * MIB;
/// Small system files (`/etc/resolv.conf`).
pub const SYSTEM_FILE_MAX: u64 = MIB;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct InputError {
    /// The file as named by the user.
    pub path: String,
    /// What went wrong (without the path).
    pub reason: Reason,
}

#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// The OS refused (missing file, permissions, …).
    #[error("{0}")]
    Io(std::io::Error),
    /// A FIFO, device, socket or directory.
    #[error("{what} is {kind}, not a regular file; refused (wavelift reads only regular files)")]
    NotRegular {
        what: &'static str,
        kind: &'static str,
    },
    /// Larger than its limit.
    #[error("{what} is larger than the {} limit ({}); refused", human(*.limit), size_text(*.size, *.limit))]
    TooLarge {
        what: &'static str,
        limit: u64,
        /// The size the file declared, when known (`None`: it grew while being read).
        size: Option<u64>,
    },
    /// Text that is not UTF-8.
    #[error("{what} is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 { what: &'static str, offset: usize },
}

fn size_text(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(s) => format!("the file has {}", human(s)),
        None => format!("more than {} bytes read", limit),
    }
}

/// `16 MiB`, `1 GiB`, `1.5 KiB`, `300 bytes`.
pub fn human(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, s) in UNITS {
        if n >= s {
            return if n.is_multiple_of(s) {
                format!("{} {u}", n / s)
            } else {
                format!("{:.1} {u}", n as f64 / s as f64)
            };
        }
    }
    format!("{n} bytes")
}

impl InputError {
    fn new(path: &Path, reason: Reason) -> InputError {
        InputError {
            path: path.display().to_string(),
            reason,
        }
    }

    /// The error as an `io::Error` whose message is the reason (for error types that add
    /// the path themselves).
    pub fn into_io(self) -> std::io::Error {
        match self.reason {
            Reason::Io(e) => e,
            r @ Reason::NotRegular { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, r.to_string())
            }
            r @ Reason::TooLarge { .. } => {
                std::io::Error::new(std::io::ErrorKind::FileTooLarge, r.to_string())
            }
            r @ Reason::NotUtf8 { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, r.to_string())
            }
        }
    }
}

/// What a file that is not regular is, for messages.
fn kind_of(meta: &Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        return None;
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Opens `path` for reading if it is a regular file (symlinks followed), and returns it with
/// its size. Never blocks on a FIFO and never opens a device.
pub fn open_regular(path: &Path, what: &'static str) -> Result<(File, u64), InputError> {
    let err = |reason| InputError::new(path, reason);
    let meta = std::fs::metadata(path).map_err(|e| err(Reason::Io(e)))?;
    if let Some(kind) = kind_of(&meta) {
        return Err(err(Reason::NotRegular { what, kind }));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: a path swapped for a FIFO after the check above must not block the
        // open (reads of a regular file ignore the flag). No controlling terminal either.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = opts.open(path).map_err(|e| err(Reason::Io(e)))?;
    let meta = file.metadata().map_err(|e| err(Reason::Io(e)))?;
    if let Some(kind) = kind_of(&meta) {
        return Err(err(Reason::NotRegular { what, kind }));
    }
    Ok((file, meta.len()))
}

/// Reads a regular file of at most `limit` bytes (`what` names it in errors: "plan",
/// "theme file", …).
pub fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let mut buf = Vec::new();
    read_bounded_into(path, limit, what, &mut buf)?;
    Ok(buf)
}

/// [`read_bounded`] into a buffer the caller reuses (cleared first).
pub fn read_bounded_into(
    path: &Path,
    limit: u64,
    what: &'static str,
    buf: &mut Vec<u8>,
) -> Result<(), InputError> {
    buf.clear();
    let (file, size) = open_regular(path, what)?;
    read_open_into(file, size, path, limit, what, buf)
}

/// Reads an already opened regular file of `size` bytes (from [`open_regular`]) into `buf`
/// (cleared first), refusing more than `limit` bytes.
pub fn read_open_into(
    file: File,
    size: u64,
    path: &Path,
    limit: u64,
    what: &'static str,
    buf: &mut Vec<u8>,
) -> Result<(), InputError> {
    buf.clear();
    if size > limit {
        return Err(InputError::new(
            path,
            Reason::TooLarge {
                what,
                limit,
                size: Some(size),
            },
        ));
    }
    buf.reserve(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(buf)
        .map_err(|e| InputError::new(path, Reason::Io(e)))?;
    if buf.len() as u64 > limit {
        buf.clear();
        buf.shrink_to_fit();
        return Err(InputError::new(
            path,
            Reason::TooLarge {
                what,
                limit,
                size: None,
            },
        ));
    }
    Ok(())
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_string(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<String, InputError> {
    let bytes = read_bounded(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        InputError::new(
            path,
            Reason::NotUtf8 {
                what,
                offset: e.utf8_error().valid_up_to(),
            },
        )
    })
}

/// Creates `dir` (and missing parents) with mode `0700`. An existing directory is left as it
/// is (it may be shared, like `/tmp`); see [`tighten_dir`] for one wavelift owns.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Makes a directory wavelift owns (its state directory) `0700` if it is wider.
pub fn tighten_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(dir)?;
        if meta.is_dir() && meta.permissions().mode() & 0o077 != 0 {
            let mut p = meta.permissions();
            p.set_mode(meta.permissions().mode() & !0o077);
            std::fs::set_permissions(dir, p)?;
        }
    }
    let _ = dir;
    Ok(())
}

fn private_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Makes an opened file `0600` (a file that existed before keeps its mode on open).
fn make_private(f: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    let _ = f;
    Ok(())
}

/// Writes `bytes` to `path`, created (or truncated) with mode `0600`; an existing file is
/// made `0600` before anything is written to it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = private_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    make_private(&f)?;
    f.set_len(0)?;
    f.write_all(bytes)?;
    f.flush()
}

/// Opens `path` for appending, created with mode `0600` (an existing file is made `0600`).
pub fn open_private_append(path: &Path) -> std::io::Result<File> {
    let f = private_options().append(true).create(true).open(path)?;
    make_private(&f)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_kinds_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.toml");
        std::fs::write(&p, vec![b'#'; 2000]).expect("write");
        let e = read_bounded(&p, 1024, "plan").expect_err("too large");
        let msg = e.to_string();
        assert!(
            msg.contains("big.toml") && msg.contains("1 KiB limit"),
            "{msg}"
        );
        assert_eq!(read_bounded(&p, 2000, "plan").expect("fits").len(), 2000);
        let e = read_bounded(dir.path(), 1024, "plan").expect_err("directory");
        assert!(
            e.to_string().contains("a directory, not a regular file"),
            "{e}"
        );
        let e = read_bounded(Path::new("/dev/zero"), 1024, "plan").expect_err("device");
        assert!(
            e.to_string()
                .starts_with("/dev/zero: plan is a character device"),
            "{e}"
        );
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&p, &link).expect("symlink");
        assert_eq!(
            read_bounded(&link, 4096, "plan").expect("followed").len(),
            2000
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(12), "12 bytes");
        assert_eq!(human(1 << 30), "1 GiB");
    }

    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k");
        std::fs::write(&p, "old").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&p, b"new").expect("write");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).expect("read"), b"new");
        let d = dir.path().join("a/b");
        create_private_dir(&d).expect("mkdir");
        let mode = std::fs::metadata(&d).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
