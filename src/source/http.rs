//! A small HTTP/1.1 client for the vSphere REST API: hyper over our own TCP stream, with TLS
//! pinned to the vCenter certificate's SHA-1 thumbprint from the plan (what CDI's vddk
//! importer pins too). Plain `http://` is accepted only for loopback (the embedded sim).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
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

pub struct Response {
    pub status: u16,
    pub body: Bytes,
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

/// Accepts exactly the certificate whose SHA-1 matches the pinned thumbprint.
#[derive(Debug)]
struct Thumbprint {
    sha1: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

pub fn parse_thumbprint(t: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = t
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    bytes.filter(|b| b.len() == 20)
}

impl ServerCertVerifier for Thumbprint {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, end_entity.as_ref());
        if digest.as_ref() == self.sha1.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "vCenter certificate does not match the plan's thumbprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

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

async fn send_inner(
    ep: &Endpoint,
    thumbprint: Option<&[u8]>,
    req: Request<Full<Bytes>>,
) -> Result<Response, HttpError> {
    let addr = format!("{}:{}", ep.host, ep.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| HttpError::Connect(addr.clone(), e.to_string()))?;
    if ep.https {
        let sha1 = thumbprint
            .ok_or_else(|| HttpError::Tls("no certificate thumbprint to pin".into()))?
            .to_vec();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Thumbprint { sha1, provider }))
            .with_no_client_auth();
        let name =
            ServerName::try_from(ep.host.clone()).map_err(|e| HttpError::Tls(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls(e.to_string()))?;
        exchange(hyper_util::rt::TokioIo::new(tls), req).await
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), req).await
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Result<Response, HttpError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| HttpError::Protocol(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| HttpError::Protocol(e.to_string()));
    let out = match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpError::Protocol(e.to_string()))?
                .to_bytes();
            Ok(Response { status, body })
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_thumbprints() {
        let e = Endpoint::parse("https://vcenter.example.internal").expect("https");
        assert_eq!((e.https, e.port), (true, 443));
        let e = Endpoint::parse("http://127.0.0.1:8080/api").expect("loopback http");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert!(matches!(
            Endpoint::parse("http://vcenter.example.internal"),
            Err(HttpError::InsecureRemote(_))
        ));
        assert!(
            parse_thumbprint("20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3")
                .is_some()
        );
        assert!(parse_thumbprint("20:6C").is_none());
    }
}
