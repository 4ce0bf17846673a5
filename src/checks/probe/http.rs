//! HTTP(S) GET probe: the shared [`crate::http1`] client over a TCP stream we open ourselves,
//! so the request goes to exactly the address in the URL.
//!
//! HTTPS: the certificate is **not verified**. Checks usually target a VM by IP
//! (`https://{ip}/health`), where a certificate rarely names the IP, and the check proves
//! reachability and the application's status, not identity. Every https result says
//! "certificate not verified" in its detail so nobody mistakes it for a TLS audit.

use super::{ms, status_accepted, Probe};
use crate::http1::{exchange, ExchangeError, TlsPolicy};
use bytes::Bytes;
use http_body_util::Full;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The parts of an http(s) URL a probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

pub(crate) fn parse_url(url: &str) -> Option<Url> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, t) = v6.split_once(']')?;
        (h, t.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p > 0)?,
        None if https => 443,
        None => 80,
    };
    if host.is_empty() {
        return None;
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.is_empty() || tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Some(Url {
        https,
        host: host.to_string(),
        port,
        path,
    })
}

pub(crate) async fn probe(url: &str, expect: &[u16], timeout: Duration) -> Probe {
    let Some(u) = parse_url(url) else {
        return Probe::error(format!("`{url}` is not an http(s) URL"));
    };
    let start = Instant::now();
    match tokio::time::timeout(timeout, get(&u)).await {
        Ok(Ok(status)) => {
            let t = start.elapsed();
            let tls = if u.https {
                "; certificate not verified"
            } else {
                ""
            };
            let want = if expect.is_empty() {
                "2xx/3xx".to_string()
            } else {
                format!("{expect:?}")
            };
            if status_accepted(status, expect) {
                Probe::pass(format!("HTTP {status} in {}{tls}", ms(t)), t)
            } else {
                Probe::fail(format!("HTTP {status}, expected {want}{tls}")).with_latency(t)
            }
        }
        Ok(Err(e)) => e.into_probe(),
        Err(_) => Probe::fail(format!("no HTTP response within {}", ms(timeout))),
    }
}

enum HttpError {
    /// The server did not answer as HTTP should (refused, reset, TLS failure): a failure.
    Fail(String),
    /// We could not even try (name does not resolve, local error).
    Error(String),
}

impl HttpError {
    fn into_probe(self) -> Probe {
        match self {
            HttpError::Fail(d) => Probe::fail(d),
            HttpError::Error(d) => Probe::error(d),
        }
    }
}

async fn get(u: &Url) -> Result<u16, HttpError> {
    let addr = resolve(u).await?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused || super::tcp::is_unreachable(&e) {
            HttpError::Fail(format!("connect to {addr}: {e}"))
        } else {
            HttpError::Error(format!("connect to {addr}: {e}"))
        }
    })?;
    let host = if u.host.contains(':') {
        format!("[{}]:{}", u.host, u.port)
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let req = hyper::Request::get(u.path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "wavelift-check/1")
        .header(hyper::header::CONNECTION, "close")
        .body(Full::new(Bytes::new()))
        .map_err(|e| HttpError::Error(format!("bad request for `{}`: {e}", u.path)))?;
    let tls = u.https.then_some((&TlsPolicy::Unverified, u.host.as_str()));
    match exchange(tcp, tls, req, false).await {
        Ok(res) => Ok(res.status),
        Err(ExchangeError::Tls(e)) => {
            Err(HttpError::Fail(format!("TLS handshake with {addr}: {e}")))
        }
        Err(ExchangeError::Http(e)) => Err(HttpError::Fail(format!("no valid HTTP response: {e}"))),
    }
}

async fn resolve(u: &Url) -> Result<SocketAddr, HttpError> {
    if let Ok(ip) = u.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, u.port));
    }
    let mut addrs = tokio::net::lookup_host((u.host.as_str(), u.port))
        .await
        .map_err(|e| HttpError::Error(format!("cannot resolve `{}`: {e}", u.host)))?;
    addrs
        .next()
        .ok_or_else(|| HttpError::Error(format!("`{}` resolves to no address", u.host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = parse_url("https://[2001:db8::1]:8443/v1/health?x=1#frag").expect("url");
        assert_eq!(
            u,
            Url {
                https: true,
                host: "2001:db8::1".into(),
                port: 8443,
                path: "/v1/health?x=1".into()
            }
        );
        let u = parse_url("http://192.0.2.5").expect("url");
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = parse_url("http://192.0.2.5?q").expect("url");
        assert_eq!(u.path, "/?q");
        assert!(parse_url("ftp://x/").is_none());
        assert!(parse_url("http://:80/").is_none());
        assert!(parse_url("http://h:0/").is_none());
    }
}
