//! HTTP for the vSphere REST API: the shared [`crate::http1`] client with TLS pinned to the
//! vCenter certificate's SHA-1 thumbprint from the plan (what CDI's vddk importer pins too),
//! and a timeout per request. Plain `http://` is accepted only for loopback (the embedded
//! sim).

use crate::http1::{exchange, ExchangeError, TlsPolicy};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL `{0}`")]
    Url(String),
    #[error("plain http is only allowed to loopback addresses, not `{0}`")]
    InsecureRemote(String),
    #[error("connect {0}: {1}")]
    Connect(String, String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Protocol(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl HttpError {
    /// No answer, or the connection broke: another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::Connect(..) | HttpError::Protocol(_) | HttpError::Timeout(_)
        )
    }
}

/// Scheme, host and port of a base URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, HttpError> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(HttpError::Url(url.to_string()));
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p.parse().map_err(|_| HttpError::Url(url.to_string()))?;
                (h.trim_matches(['[', ']']).to_string(), port)
            }
            _ => (
                authority.trim_matches(['[', ']']).to_string(),
                if https { 443 } else { 80 },
            ),
        };
        if host.is_empty() {
            return Err(HttpError::Url(url.to_string()));
        }
        if !https {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(HttpError::InsecureRemote(url.to_string()));
            }
        }
        Ok(Endpoint { https, host, port })
    }
}

pub use crate::http1::{parse_thumbprint, Response};

/// Sends one request and reads the whole response.
pub async fn send(
    ep: &Endpoint,
    thumbprint: Option<&[u8]>,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    tokio::time::timeout(timeout, send_inner(ep, thumbprint, req))
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

/// vCenter's certificate (DER), over a connection pinned by its SHA-1 `thumbprint`.
pub async fn pinned_certificate(
    ep: &Endpoint,
    thumbprint: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, HttpError> {
    let addr = format!("{}:{}", ep.host, ep.port);
    let fetch = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| HttpError::Connect(addr.clone(), e.to_string()))?;
        crate::http1::pinned_certificate(tcp, &ep.host, thumbprint)
            .await
            .map_err(|e| HttpError::Tls(e.to_string()))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

async fn send_inner(
    ep: &Endpoint,
    thumbprint: Option<&[u8]>,
    req: Request<Full<Bytes>>,
) -> Result<Response, HttpError> {
    let addr = format!("{}:{}", ep.host, ep.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| HttpError::Connect(addr.clone(), e.to_string()))?;
    let policy = if ep.https {
        let sha1 =
            thumbprint.ok_or_else(|| HttpError::Tls("no certificate thumbprint to pin".into()))?;
        Some(TlsPolicy::PinnedSha1(sha1.to_vec()))
    } else {
        None
    };
    exchange(
        tcp,
        policy.as_ref().map(|p| (p, ep.host.as_str())),
        req,
        true,
    )
    .await
    .map_err(|e| match e {
        ExchangeError::Tls(m) => HttpError::Tls(m),
        ExchangeError::Http(m) => HttpError::Protocol(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://vcenter.example.internal").expect("https");
        assert_eq!((e.https, e.port), (true, 443));
        let e = Endpoint::parse("http://127.0.0.1:8080/api").expect("loopback http");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert!(matches!(
            Endpoint::parse("http://vcenter.example.internal"),
            Err(HttpError::InsecureRemote(_))
        ));
    }
}
