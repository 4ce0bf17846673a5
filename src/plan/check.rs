//! Check specifications as written in a plan (`"tcp:5432"`, `"dns:pay-db-01.corp.example"`,
//! `"https://pay-web-01.corp.example/health"`), parsed into typed checks.
//!
//! Grammar (strings):
//! - `ip-preserved`, `mac-preserved`: the VMI reports the planned IP / MAC (guest agent);
//! - `icmp`: the planned IP answers ping;
//! - `tcp:PORT`: a TCP connect to the planned IP succeeds;
//! - `http:URL`, `https:URL`, or the bare URL (`http://…`, `https://…`): the URL answers with
//!   an expected status (default any 2xx/3xx); `{ip}` in the URL stands for the VM's first IP;
//! - `dns:NAME`: A/AAAA of NAME equals the planned IP and the PTR of the IP names NAME;
//! - `disk-consistent`: the booted VM's disks hold every write the source made before its
//!   power-off (rehearsal only: the simulated world knows what each copy holds).
//!
//! A check may also be a table: `{ check = "https://…/health", expect = [200, 204],
//! timeout = "3s", retries = 2 }`.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    IpPreserved,
    MacPreserved,
    Icmp,
    Tcp {
        port: u16,
    },
    Http {
        url: String,
    },
    Dns {
        name: String,
    },
    /// The booted VM's disks hold every write the source made before it was powered off.
    /// Only the rehearsal cluster can tell (it models what each copy holds); on a real
    /// cluster, and for `http` sources (images do not change), it is skipped.
    DiskConsistent,
}

impl CheckKind {
    /// Short kind name used in reports and the TUI's check matrix.
    pub fn kind_name(&self) -> &'static str {
        match self {
            CheckKind::IpPreserved => "ip-preserved",
            CheckKind::MacPreserved => "mac-preserved",
            CheckKind::Icmp => "icmp",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Http { url } if url.starts_with("https") => "https",
            CheckKind::Http { .. } => "http",
            CheckKind::Dns { .. } => "dns",
            CheckKind::DiskConsistent => "disk-consistent",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckKind::IpPreserved => f.write_str("ip-preserved"),
            CheckKind::MacPreserved => f.write_str("mac-preserved"),
            CheckKind::Icmp => f.write_str("icmp"),
            CheckKind::Tcp { port } => write!(f, "tcp:{port}"),
            CheckKind::Http { url } => f.write_str(url),
            CheckKind::Dns { name } => write!(f, "dns:{name}"),
            CheckKind::DiskConsistent => f.write_str("disk-consistent"),
        }
    }
}

/// A check with its optional per-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Accepted HTTP statuses; empty means any 2xx or 3xx.
    pub expect: Vec<u16>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
}

impl CheckSpec {
    pub fn new(kind: CheckKind) -> Self {
        CheckSpec {
            kind,
            expect: Vec::new(),
            timeout: None,
            retries: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSpecError {
    #[error("empty check")]
    Empty,
    #[error("unknown check `{0}`")]
    UnknownKind(String),
    #[error("`{0}` needs a port: `tcp:PORT`")]
    MissingPort(String),
    #[error("port `{0}` is not a number between 1 and 65535")]
    BadPort(String),
    #[error("`{0}` is not an http(s) URL with a host")]
    BadUrl(String),
    #[error("`{0}` is not a valid DNS name")]
    BadDnsName(String),
}

const KINDS: &[&str] = &[
    "ip-preserved",
    "mac-preserved",
    "icmp",
    "tcp:PORT",
    "http:URL",
    "https:URL",
    "dns:NAME",
    "disk-consistent",
];

/// The kind names a user can write, for "did you mean" hints.
pub fn known_kinds() -> &'static [&'static str] {
    KINDS
}

pub fn parse_check(text: &str) -> Result<CheckKind, CheckSpecError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CheckSpecError::Empty);
    }
    match t {
        "ip-preserved" => return Ok(CheckKind::IpPreserved),
        "mac-preserved" => return Ok(CheckKind::MacPreserved),
        "icmp" | "ping" => return Ok(CheckKind::Icmp),
        "disk-consistent" => return Ok(CheckKind::DiskConsistent),
        "tcp" => return Err(CheckSpecError::MissingPort(t.to_string())),
        _ => {}
    }
    if t.starts_with("http://") || t.starts_with("https://") {
        return parse_url(t);
    }
    let Some((kind, arg)) = t.split_once(':') else {
        return Err(CheckSpecError::UnknownKind(t.to_string()));
    };
    match kind {
        "tcp" => {
            let port: u16 = arg
                .parse()
                .map_err(|_| CheckSpecError::BadPort(arg.to_string()))?;
            if port == 0 {
                return Err(CheckSpecError::BadPort(arg.to_string()));
            }
            Ok(CheckKind::Tcp { port })
        }
        "http" | "https" => {
            if arg.starts_with("http://") || arg.starts_with("https://") {
                parse_url(arg)
            } else if let Some(rest) = arg.strip_prefix("//") {
                parse_url(&format!("{kind}://{rest}"))
            } else {
                Err(CheckSpecError::BadUrl(arg.to_string()))
            }
        }
        "dns" => {
            let name = arg.trim_end_matches('.');
            if is_dns_name(name) {
                Ok(CheckKind::Dns {
                    name: name.to_ascii_lowercase(),
                })
            } else {
                Err(CheckSpecError::BadDnsName(arg.to_string()))
            }
        }
        _ => Err(CheckSpecError::UnknownKind(t.to_string())),
    }
}

fn parse_url(url: &str) -> Result<CheckKind, CheckSpecError> {
    let bad = || CheckSpecError::BadUrl(url.to_string());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
            (h, tail.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host.is_empty() || host.contains(char::is_whitespace) || !port_ok {
        return Err(bad());
    }
    Ok(CheckKind::Http {
        url: url.to_string(),
    })
}

/// RFC 1123 host name: labels of letters, digits and hyphens, not starting or ending with a
/// hyphen, at most 63 characters each and 253 in all.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Parses `500ms`, `2s`, `1m`, `1.5s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0 && secs < 86_400.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(parse_check("ip-preserved"), Ok(CheckKind::IpPreserved));
        assert_eq!(parse_check("mac-preserved"), Ok(CheckKind::MacPreserved));
        assert_eq!(parse_check("icmp"), Ok(CheckKind::Icmp));
        assert_eq!(parse_check("tcp:5432"), Ok(CheckKind::Tcp { port: 5432 }));
        assert_eq!(
            parse_check("https://pay-web-01.corp.example/health"),
            Ok(CheckKind::Http {
                url: "https://pay-web-01.corp.example/health".into()
            })
        );
        assert_eq!(
            parse_check("http:http://{ip}:8080/"),
            Ok(CheckKind::Http {
                url: "http://{ip}:8080/".into()
            })
        );
        assert_eq!(
            parse_check("dns:Pay-DB-01.corp.example."),
            Ok(CheckKind::Dns {
                name: "pay-db-01.corp.example".into()
            })
        );
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(matches!(
            parse_check("tcp:0"),
            Err(CheckSpecError::BadPort(_))
        ));
        assert!(matches!(
            parse_check("tcp:70000"),
            Err(CheckSpecError::BadPort(_))
        ));
        assert!(matches!(
            parse_check("tcp"),
            Err(CheckSpecError::MissingPort(_))
        ));
        assert!(matches!(
            parse_check("icmpp"),
            Err(CheckSpecError::UnknownKind(_))
        ));
        assert!(matches!(
            parse_check("http://"),
            Err(CheckSpecError::BadUrl(_))
        ));
        assert!(matches!(
            parse_check("https://host:99999/"),
            Err(CheckSpecError::BadUrl(_))
        ));
        assert!(matches!(
            parse_check("dns:bad..name"),
            Err(CheckSpecError::BadDnsName(_))
        ));
        assert_eq!(parse_check(""), Err(CheckSpecError::Empty));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("x"), None);
    }
}
