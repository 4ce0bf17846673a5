//! vSphere Automation REST client: session login, find VM by name or instance UUID, power
//! state, power off/on. The session token lives in the client; credentials are never logged.
//!
//! The same client speaks vim25 over JSON (VI/JSON) for warm migration: `vim.rs` holds its
//! [`WarmOps`](super::WarmOps) implementation. An `Arc<VsphereClient>` serves as both
//! an `Arc<dyn SourceOps>` and an `Arc<dyn WarmOps>`.

mod vim;

use super::http::{self, Endpoint};
use super::{BoxFuture, Credentials, RetryPolicy, SourceError, SourceOps, SourcePower};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;

const TIMEOUT: Duration = Duration::from_secs(20);

pub struct VsphereClient {
    /// The base URL's path (`""` or e.g. `/vc`), prefixed to every request path: requests
    /// go in origin form (`POST /api/session`) with a `Host` header, as vCenter expects.
    prefix: String,
    endpoint: Endpoint,
    thumbprint: Option<Vec<u8>>,
    creds: Credentials,
    session: Mutex<Option<String>>,
    retry: RetryPolicy,
    /// Managed object ids found so far, by VM name (they never change).
    ids: std::sync::Mutex<HashMap<String, String>>,
    /// The VI/JSON side: release, its own session, task polling.
    vim: vim::VimState,
}

/// Names the endpoint and the user; never the password or a session token.
impl std::fmt::Debug for VsphereClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsphereClient")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("user", &self.creds.user)
            .field("pinned", &self.thumbprint.is_some())
            .field("retry", &self.retry)
            .field("vim", &self.vim)
            .finish_non_exhaustive()
    }
}

/// VM names per list request (keeps the query string short).
const NAMES_PER_LIST: usize = 50;

/// Bytes a VM name cannot carry as-is in a `names=a,b` query value (`,` separates names).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']');

/// Query-string encoding of a VM name (names may hold spaces and other reserved bytes).
fn enc(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, QUERY_VALUE).to_string()
}

#[derive(Deserialize)]
struct VmSummary {
    vm: String,
    name: String,
    #[serde(default)]
    instance_uuid: Option<String>,
    #[serde(default)]
    power_state: Option<String>,
}

#[derive(Deserialize)]
struct PowerInfo {
    state: String,
}

/// The readable part of a vAPI error body (`{"error_type": "…", "messages":
/// [{"default_message": "…"}]}`), or the body itself, shortened.
fn vapi_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        default_message: String,
    }
    #[derive(Deserialize)]
    struct VapiError {
        error_type: String,
        #[serde(default)]
        messages: Vec<Msg>,
    }
    if let Ok(e) = serde_json::from_slice::<VapiError>(body) {
        return match e.messages.first() {
            Some(m) => format!("{} ({})", e.error_type, m.default_message),
            None => e.error_type,
        };
    }
    shorten(body)
}

/// An error body as text, trimmed and cut at 200 characters.
fn shorten(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The `error_type` of a vAPI error body (`SERVICE_UNAVAILABLE`, `NOT_ALLOWED_IN_CURRENT_STATE`).
fn vapi_error_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct VapiError {
        error_type: String,
    }
    serde_json::from_slice::<VapiError>(body)
        .ok()
        .map(|e| e.error_type)
}

/// The path part of a base URL, without a trailing `/`.
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

impl VsphereClient {
    /// `url` is the vCenter base URL (`https://vcenter…`, or `http://127.0.0.1:PORT` for the sim).
    pub fn new(
        url: &str,
        thumbprint: Option<&str>,
        creds: Credentials,
    ) -> Result<VsphereClient, SourceError> {
        let endpoint = Endpoint::parse(url).map_err(|e| SourceError::Http(e.to_string()))?;
        let thumbprint = match thumbprint {
            Some(t) => Some(
                http::parse_thumbprint(t)
                    .ok_or_else(|| SourceError::Http(format!("bad thumbprint `{t}`")))?,
            ),
            None => None,
        };
        Ok(VsphereClient {
            prefix: url_path(url),
            endpoint,
            thumbprint,
            creds,
            session: Mutex::new(None),
            retry: RetryPolicy::default(),
            ids: std::sync::Mutex::new(HashMap::new()),
            vim: vim::VimState::default(),
        })
    }

    /// How transient errors (no answer, 5xx, 429) are retried; the default is
    /// [`RetryPolicy::default`].
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// One request (`path` below the base URL's path), with a session token, HTTP basic
    /// credentials, a JSON body, or none of them.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        basic: bool,
        body: Option<Bytes>,
    ) -> Result<http::Response, SourceError> {
        let default_port = if self.endpoint.https { 443 } else { 80 };
        let host = match (self.endpoint.host.contains(':'), self.endpoint.port) {
            (false, p) if p == default_port => self.endpoint.host.clone(),
            (false, p) => format!("{}:{p}", self.endpoint.host),
            (true, p) => format!("[{}]:{p}", self.endpoint.host),
        };
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header("host", host)
            .header("accept", "application/json");
        if let Some(t) = token {
            b = b.header("vmware-api-session-id", t);
        }
        if basic {
            let raw = format!("{}:{}", self.creds.user, self.creds.password.expose());
            b = b.header("authorization", format!("Basic {}", base64(raw.as_bytes())));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| SourceError::Http(e.to_string()))?;
        http::send(&self.endpoint, self.thumbprint.as_deref(), req, TIMEOUT)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    SourceError::Unavailable(e.to_string())
                } else {
                    SourceError::Http(e.to_string())
                }
            })
    }

    async fn token(&self, renew: bool) -> Result<String, SourceError> {
        let mut s = self.session.lock().await;
        if let (Some(t), false) = (s.as_ref(), renew) {
            return Ok(t.clone());
        }
        let res = self.raw("POST", "/api/session", None, true, None).await?;
        if res.status == 401 || res.status == 403 {
            return Err(SourceError::Unauthorized(format!(
                "login as `{}` refused",
                self.creds.user
            )));
        }
        if !(200..300).contains(&res.status) {
            return Err(SourceError::Api {
                status: res.status,
                message: vapi_message(&res.body),
            });
        }
        let token: String = serde_json::from_slice(&res.body)
            .map_err(|e| SourceError::Http(format!("session token: {e}")))?;
        *s = Some(token.clone());
        Ok(token)
    }

    /// A request with the session; logs in again once when the session expired.
    async fn call(&self, method: &str, path: &str) -> Result<http::Response, SourceError> {
        self.call_with(method, path, None).await
    }

    /// [`Self::call`] with an optional JSON body.
    async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<http::Response, SourceError> {
        let token = self.token(false).await?;
        let res = self
            .raw(method, path, Some(&token), false, body.clone())
            .await?;
        if res.status != 401 {
            return Ok(res);
        }
        let token = self.token(true).await?;
        self.raw(method, path, Some(&token), false, body).await
    }

    /// `GET /api/vcenter/vm?names=a,b,…`: the summaries of the named VMs.
    async fn list(&self, names: &[&str]) -> Result<Vec<VmSummary>, SourceError> {
        let q: Vec<String> = names.iter().map(|n| enc(n)).collect();
        let res = self
            .call("GET", &format!("/api/vcenter/vm?names={}", q.join(",")))
            .await?;
        if res.status != 200 {
            return Err(SourceError::Api {
                status: res.status,
                message: vapi_message(&res.body),
            });
        }
        serde_json::from_slice(&res.body).map_err(|e| SourceError::Http(format!("VM list: {e}")))
    }

    /// The summary of `name` (with the instance UUID when given) among `list`; remembers
    /// its managed object id.
    fn pick<'l>(
        &self,
        list: &'l [VmSummary],
        name: &str,
        uuid: Option<&str>,
    ) -> Result<&'l VmSummary, SourceError> {
        let v = list
            .iter()
            .find(|v| {
                v.name == name
                    && (uuid.is_none()
                        || v.instance_uuid.is_none()
                        || v.instance_uuid.as_deref() == uuid)
            })
            .ok_or_else(|| SourceError::NotFound(name.to_string()))?;
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), v.vm.clone());
        Ok(v)
    }

    /// The VM's managed object id, by name (and instance UUID when given); asked of
    /// vCenter once, then remembered.
    pub async fn find_vm(&self, name: &str, uuid: Option<&str>) -> Result<String, SourceError> {
        if let Some(id) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(id.clone());
        }
        let list = self.list(&[name]).await?;
        self.pick(&list, name, uuid).map(|v| v.vm.clone())
    }

    /// The power state of many VMs, [`NAMES_PER_LIST`] per request, retrying transient
    /// errors; see [`SourceOps::power_states`].
    pub async fn get_powers(
        &self,
        vms: &[(String, Option<String>)],
    ) -> Result<Vec<Result<SourcePower, SourceError>>, SourceError> {
        let mut out = Vec::with_capacity(vms.len());
        for chunk in vms.chunks(NAMES_PER_LIST) {
            let names: Vec<&str> = chunk.iter().map(|(n, _)| n.as_str()).collect();
            let list =
                super::with_retry(&self.retry, "list source VMs", || self.list(&names)).await?;
            for (name, uuid) in chunk {
                out.push(self.pick(&list, name, uuid.as_deref()).map(|v| {
                    if v.power_state.as_deref() == Some("POWERED_ON") {
                        SourcePower::On
                    } else {
                        SourcePower::Off
                    }
                }));
            }
        }
        Ok(out)
    }

    /// The VM's power state, retrying transient errors.
    pub async fn get_power(
        &self,
        name: &str,
        uuid: Option<&str>,
    ) -> Result<SourcePower, SourceError> {
        let what = format!("power state of `{name}`");
        super::with_retry(&self.retry, &what, || self.get_power_once(name, uuid)).await
    }

    /// Powers the VM on or off, retrying transient errors (see [`RetryPolicy`] for why
    /// repeating is safe).
    pub async fn set_power(
        &self,
        name: &str,
        uuid: Option<&str>,
        on: bool,
    ) -> Result<(), SourceError> {
        let what = format!("power-{} `{name}`", if on { "on" } else { "off" });
        super::with_retry(&self.retry, &what, || self.set_power_once(name, uuid, on)).await
    }

    async fn get_power_once(
        &self,
        name: &str,
        uuid: Option<&str>,
    ) -> Result<SourcePower, SourceError> {
        let id = self.find_vm(name, uuid).await?;
        let res = self
            .call("GET", &format!("/api/vcenter/vm/{id}/power"))
            .await?;
        if res.status != 200 {
            return Err(SourceError::Api {
                status: res.status,
                message: vapi_message(&res.body),
            });
        }
        let p: PowerInfo = serde_json::from_slice(&res.body)
            .map_err(|e| SourceError::Http(format!("power: {e}")))?;
        Ok(if p.state == "POWERED_ON" {
            SourcePower::On
        } else {
            SourcePower::Off
        })
    }

    async fn set_power_once(
        &self,
        name: &str,
        uuid: Option<&str>,
        on: bool,
    ) -> Result<(), SourceError> {
        let id = self.find_vm(name, uuid).await?;
        let action = if on { "start" } else { "stop" };
        let res = self
            .call(
                "POST",
                &format!("/api/vcenter/vm/{id}/power?action={action}"),
            )
            .await?;
        let already = res.status == 400
            && String::from_utf8_lossy(&res.body).contains("ALREADY_IN_DESIRED_STATE");
        if (200..300).contains(&res.status) || already {
            Ok(())
        } else {
            Err(SourceError::Api {
                status: res.status,
                message: vapi_message(&res.body),
            })
        }
    }
}

impl SourceOps for VsphereClient {
    fn warm(&self) -> Option<&dyn super::WarmOps> {
        Some(self)
    }

    fn vm_id<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(self.find_vm(vm, uuid))
    }

    fn power_state<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<SourcePower, SourceError>> {
        Box::pin(self.get_power(vm, uuid))
    }
    fn power_states<'a>(
        &'a self,
        vms: &'a [(String, Option<String>)],
    ) -> BoxFuture<'a, Result<Vec<Result<SourcePower, SourceError>>, SourceError>> {
        Box::pin(self.get_powers(vms))
    }
    fn power_off<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.set_power(vm, uuid, false))
    }
    fn power_on<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.set_power(vm, uuid, true))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vapi_errors_read_as_text() {
        let body = br#"{"error_type":"SERVICE_UNAVAILABLE","messages":[{"default_message":"busy","id":"x"}]}"#;
        assert_eq!(super::vapi_message(body), "SERVICE_UNAVAILABLE (busy)");
        assert_eq!(super::vapi_message(b" plain text "), "plain text");
        assert_eq!(super::vapi_message(&[b'x'; 300]).chars().count(), 201);
    }

    #[test]
    fn vm_names_are_encoded_for_the_query() {
        assert_eq!(super::enc("shop-db-01"), "shop-db-01");
        assert_eq!(super::enc("db 01,a&b"), "db%2001%2Ca%26b");
    }

    #[test]
    fn base_url_paths() {
        assert_eq!(super::url_path("https://vcenter.example"), "");
        assert_eq!(super::url_path("https://vcenter.example/"), "");
        assert_eq!(super::url_path("http://127.0.0.1:8080/vc/"), "/vc");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"sim-user:pw"), "c2ltLXVzZXI6cHc=");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b""), "");
    }
}
