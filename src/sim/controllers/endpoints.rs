//! HTTP endpoints of the simulated world, served on the sim's API port beside the
//! Kubernetes API:
//!
//! - a minimal vSphere Automation REST API: `POST /api/session` (basic auth with the
//!   scenario's `vcenter_user`/`vcenter_password` → session token; other credentials are
//!   401 as vCenter answers them), `GET /api/vcenter/vm?names=a,b`, `GET /api/vcenter/vm/{vm}/power`,
//!   `POST /api/vcenter/vm/{vm}/power?action=start|stop`, `GET /api/vcenter/vm/{vm}/guest/power`
//!   (`{"state": "RUNNING"|"SHUTTING_DOWN"|"NOT_RUNNING", "operations_ready": bool}`),
//!   `POST /api/vcenter/vm/{vm}/guest/power?action=shutdown` (204; VMware Tools not running:
//!   503 `SERVICE_UNAVAILABLE`; powered off: 400 `NOT_ALLOWED_IN_CURRENT_STATE`; the guest
//!   powers off the scenario's `shutdown_seconds` later), and from 8.0.2
//!   `POST /api/vcenter/system?action=hello` (`{"api_releases": [...]}` → the first of the
//!   client's releases this vCenter serves, `""` when none); requests other than the login
//!   and hello need the `vmware-api-session-id` header;
//! - the vim25 API as VI/JSON under `/sdk/vim25/{release}/…` (see [`super::vim`]), from
//!   8.0.1;
//! - the network: `GET /sim/v1/probe?ip=IP[&port=PORT][&proto=icmp|tcp][&from=IP]` →
//!   `{"result": "reachable"|"unreachable"|"conflict", "holders": [...], "detail": "…",
//!   "blocked_by": [...]}`: `from` is the flow's source address (default
//!   [`crate::sim::WORKSTATION_IP`], the rehearsal workstation); a migrated VM's pod is
//!   subject to its namespace's NetworkPolicies and MultiNetworkPolicies, and a flow they
//!   deny is `unreachable` with `blocked_by` naming the policies (omitted otherwise);
//! - the disks: `GET /sim/v1/disks?vm=NAME&disks=N` → `{"result": "consistent"|"inconsistent"|"unknown",
//!   "detail": "…", "vm", "power", "generation", "extents", "disks": [{"index", "file", "size",
//!   "writes", "written_bytes", "copy": "none"|"copying"|"copied", "stages", "holds",
//!   "missing_writes", "missing_bytes", "result", "detail"}]}`.
//!
//! Every vCenter request (REST and VI/JSON) counts in [`VcenterFaults::requests`] and may be
//! answered with the scenario's injected 503.

use super::scenario::PowerState;
use super::vim::{same, VimState};
use super::world::World;
use axum::extract::{FromRef, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct WorldState {
    pub world: Arc<World>,
    sessions: Arc<Mutex<HashSet<String>>>,
    /// The VI/JSON endpoint's state (its own sessions).
    vim: VimState,
    pub vcenter: Arc<VcenterFaults>,
    /// The user and password the simulated vCenter accepts.
    credentials: Arc<(String, String)>,
}

impl WorldState {
    /// The world endpoints, accepting the default scenario's vCenter credentials (see
    /// [`WorldState::with_credentials`]).
    pub fn new(world: Arc<World>, vcenter: Arc<VcenterFaults>) -> Self {
        let defaults = super::scenario::Scenario::default();
        let credentials = Arc::new((defaults.vcenter_user, defaults.vcenter_password));
        WorldState {
            vim: VimState::new(world.clone(), credentials.clone()),
            world,
            sessions: Arc::new(Mutex::new(HashSet::new())),
            vcenter,
            credentials,
        }
    }

    /// Accept only `user` and `password` at login (the scenario's `vcenter_user` and
    /// `vcenter_password`, which its seeded Secrets carry).
    pub fn with_credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Arc::new((user.to_string(), password.to_string()));
        self.vim = self.vim.with_credentials(self.credentials.clone());
        self
    }
}

impl FromRef<WorldState> for VimState {
    fn from_ref(s: &WorldState) -> Self {
        s.vim.clone()
    }
}

/// The scenario's vCenter fault (a share of requests answered 503) and what the vSphere
/// endpoint served. Which requests fail is a function of the seed and the request's
/// sequence number, so a run is repeatable.
#[derive(Debug, Default)]
pub struct VcenterFaults {
    pub error_rate: f64,
    pub seed: u64,
    /// vSphere REST requests served.
    pub requests: AtomicU64,
    /// Of those, answered with an injected 503.
    pub injected: AtomicU64,
}

impl VcenterFaults {
    pub fn new(error_rate: f64, seed: u64) -> Self {
        VcenterFaults {
            error_rate,
            seed,
            ..Default::default()
        }
    }
}

/// The router for the world endpoints.
pub fn router(state: WorldState) -> Router {
    let vcenter = Router::new()
        .route("/api/session", post(login).delete(logout))
        .route("/api/vcenter/vm", get(list_vms))
        .route("/api/vcenter/vm/{vm}/power", get(get_power).post(set_power))
        .route(
            "/api/vcenter/vm/{vm}/guest/power",
            get(get_guest_power).post(guest_power_action),
        )
        .route("/api/vcenter/system", post(hello))
        .route("/sdk/vim25/{release}/{*rest}", any(super::vim::sdk))
        .route("/sdk", any(not_served))
        .route("/sdk/{*rest}", any(not_served))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            vcenter_faults,
        ));
    Router::new()
        .merge(vcenter)
        .route("/sim/v1/probe", get(probe))
        .route("/sim/v1/disks", get(disks))
        .route("/sim/v1/clock", get(clock))
        .with_state(state)
}

/// Counts vSphere requests and answers the scenario's share of them with 503, as a busy
/// vCenter appliance does.
async fn vcenter_faults(State(state): State<WorldState>, req: Request, next: Next) -> Response {
    let f = &state.vcenter;
    let n = f.requests.fetch_add(1, Relaxed);
    if crate::sim::fault::strikes(f.seed ^ n.rotate_left(32), f.error_rate) {
        f.injected.fetch_add(1, Relaxed);
        return vapi_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "simulated vCenter error (scenario fault)",
        );
    }
    next.run(req).await
}

/// Paths this router answers (the API server forwards them here).
pub fn handles(path: &str) -> bool {
    path == "/api/session"
        || path.starts_with("/api/vcenter/")
        || path == "/sdk"
        || path.starts_with("/sdk/")
        || path == "/api/vcenter"
        || path.starts_with("/sim/")
}

fn vapi_error(status: StatusCode, kind: &str, msg: &str) -> Response {
    (
        status,
        Json(json!({ "error_type": kind, "messages": [{ "default_message": msg, "id": kind }] })),
    )
        .into_response()
}

/// A vAPI call needs a session: the 401 `UNAUTHENTICATED` vCenter answers without one.
fn without_session(state: &WorldState, headers: &HeaderMap) -> Option<Response> {
    (!authorised(state, headers)).then(|| {
        vapi_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "session required",
        )
    })
}

fn authorised(state: &WorldState, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(token)
}

/// `user:password` from a `Basic` authorization header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = decode_base64(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Go's standard base64 (padded), as `net/http`'s `BasicAuth` and `encoding/pem` decode it.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    crate::sim::go_base64::STD.decode(s).ok()
}

/// `POST /api/session`: a session for the scenario's vCenter user, 401 for any other
/// credentials or none, with the body vCenter's vAPI endpoint answers a failed login with
/// (`UNAUTHENTICATED`, `com.vmware.vapi.endpoint.method.authentication.required`).
async fn login(State(state): State<WorldState>, headers: HeaderMap) -> Response {
    let (user, password) = &*state.credentials;
    let ok = basic_credentials(&headers).is_some_and(|(u, p)| same(&u, user) & same(&p, password));
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"VAPI endpoint\"")],
            Json(json!({
                "error_type": "UNAUTHENTICATED",
                "messages": [{
                    "args": [],
                    "default_message": "Authentication required.",
                    "id": "com.vmware.vapi.endpoint.method.authentication.required",
                }],
            })),
        )
            .into_response();
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.clone());
    (StatusCode::CREATED, Json(json!(token))).into_response()
}

async fn logout(State(state): State<WorldState>, headers: HeaderMap) -> Response {
    if let Some(t) = headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok())
    {
        state
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(t);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn power_text(p: PowerState) -> &'static str {
    match p {
        PowerState::On => "POWERED_ON",
        PowerState::Off => "POWERED_OFF",
    }
}

async fn list_vms(
    State(state): State<WorldState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(denied) = without_session(&state, &headers) {
        return denied;
    }
    let names: Option<Vec<&str>> = q
        .get("names")
        .map(|n| n.split(',').filter(|s| !s.is_empty()).collect());
    let found = match &names {
        Some(n) => state.world.find_names(n),
        None => state.world.source_vms(),
    };
    let vms: Vec<_> = found
        .into_iter()
        .map(|v| {
            json!({ "vm": v.moid, "name": v.spec.name, "power_state": power_text(v.power),
                          "instance_uuid": v.spec.uuid })
        })
        .collect();
    Json(json!(vms)).into_response()
}

async fn get_power(
    State(state): State<WorldState>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    if let Some(denied) = without_session(&state, &headers) {
        return denied;
    }
    match state.world.find(&vm) {
        Some(v) if v.moid == vm => Json(json!({ "state": power_text(v.power) })).into_response(),
        _ => vapi_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("VirtualMachine {vm} not found"),
        ),
    }
}

#[derive(Deserialize)]
struct PowerAction {
    action: String,
}

async fn set_power(
    State(state): State<WorldState>,
    headers: HeaderMap,
    Path(vm): Path<String>,
    Query(a): Query<PowerAction>,
) -> Response {
    if let Some(denied) = without_session(&state, &headers) {
        return denied;
    }
    let target = match a.action.as_str() {
        "start" => PowerState::On,
        "stop" | "shutdown" => PowerState::Off,
        other => {
            return vapi_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &format!("unknown action {other}"),
            )
        }
    };
    let Some(current) = state.world.find(&vm).filter(|v| v.moid == vm) else {
        return vapi_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("VirtualMachine {vm} not found"),
        );
    };
    if current.power == target {
        // vSphere answers "already in desired state" with 400 ALREADY_IN_DESIRED_STATE.
        return vapi_error(
            StatusCode::BAD_REQUEST,
            "ALREADY_IN_DESIRED_STATE",
            "the virtual machine is already in the desired power state",
        );
    }
    state.world.set_power(&vm, target);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct ProbeQuery {
    ip: String,
    port: Option<u16>,
    proto: Option<String>,
    from: Option<String>,
}

async fn probe(State(state): State<WorldState>, Query(q): Query<ProbeQuery>) -> Response {
    if q.ip.parse::<std::net::IpAddr>().is_err() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": format!("`{}` is not an IP address", q.ip) })),
        )
            .into_response();
    }
    let port = match q.proto.as_deref() {
        Some("tcp") => match q.port {
            Some(p) => Some(p),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": "proto=tcp needs port" })),
                )
                    .into_response()
            }
        },
        Some("icmp") | None => None,
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("unknown proto `{other}`") })),
            )
                .into_response()
        }
    };
    let from = match q.from.as_deref() {
        None => crate::sim::WORKSTATION_IP,
        Some(f) => match f.parse::<std::net::IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": format!("from `{f}` is not an IP address") })),
                )
                    .into_response()
            }
        },
    };
    Json(state.world.probe_from(&q.ip, port, from)).into_response()
}

#[derive(Deserialize)]
struct DisksQuery {
    vm: String,
    disks: usize,
}

/// `GET /sim/v1/disks?vm=NAME&disks=N`: whether the guest booted from `NAME`'s imported
/// disks holds every write its source made (see [`World::disk_verdict`]).
async fn disks(State(state): State<WorldState>, Query(q): Query<DisksQuery>) -> Response {
    Json(state.world.disks_answer(&q.vm, q.disks)).into_response()
}

/// `/sdk` paths other than VI/JSON's (the SOAP endpoint is not simulated).
async fn not_served() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// `GET /api/vcenter/vm/{vm}/guest/power`: the guest's power as VMware Tools reports it
/// (vAPI `vcenter.vm.guest.Power.Info`: `state` `RUNNING`, `SHUTTING_DOWN` while a shutdown
/// is under way, `NOT_RUNNING` without Tools or powered off; `operations_ready`).
async fn get_guest_power(
    State(state): State<WorldState>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    if let Some(denied) = without_session(&state, &headers) {
        return denied;
    }
    let info = state.world.with_moid(&vm, |e, _, _| {
        let running = e.tools_running();
        let st = match (running, e.sim.shutdown_at.is_some()) {
            (false, _) => "NOT_RUNNING",
            (true, true) => "SHUTTING_DOWN",
            (true, false) => "RUNNING",
        };
        json!({ "state": st, "operations_ready": running && st == "RUNNING" })
    });
    match info {
        Some(v) => Json(v).into_response(),
        None => vapi_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("VirtualMachine {vm} not found"),
        ),
    }
}

/// `POST /api/vcenter/vm/{vm}/guest/power?action=shutdown` (also `reboot`, `standby`:
/// refused here): 204, the guest powers off the scenario's `shutdown_seconds` later. The
/// errors the vAPI documents: Tools not running `SERVICE_UNAVAILABLE` (503), powered off
/// `NOT_ALLOWED_IN_CURRENT_STATE` (400).
async fn guest_power_action(
    State(state): State<WorldState>,
    headers: HeaderMap,
    Path(vm): Path<String>,
    Query(a): Query<PowerAction>,
) -> Response {
    if let Some(denied) = without_session(&state, &headers) {
        return denied;
    }
    if a.action != "shutdown" {
        return vapi_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("unsupported action {}", a.action),
        );
    }
    let delay = state.world.vcenter.shutdown_seconds;
    match state
        .world
        .with_moid(&vm, |e, now, _| e.shutdown_guest(now, delay))
    {
        None => vapi_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("VirtualMachine {vm} not found"),
        ),
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Some(Err(f)) if f.type_name == "ToolsUnavailable" => vapi_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "VMware Tools is not running in the guest",
        ),
        Some(Err(_)) => vapi_error(
            StatusCode::BAD_REQUEST,
            "NOT_ALLOWED_IN_CURRENT_STATE",
            "the virtual machine is powered off",
        ),
    }
}

#[derive(Deserialize)]
struct HelloSpec {
    api_releases: Vec<String>,
}

/// `POST /api/vcenter/system?action=hello` (vCenter 8.0.2 and later): the first of the
/// client's releases (in its order of preference) this vCenter serves, `""` when none; an
/// empty list is `INVALID_ARGUMENT` (vSphere Automation API reference, `System.hello`).
async fn hello(
    State(state): State<WorldState>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if state.world.vcenter.version < (8, 0, 2)
        || q.get("action").map(String::as_str) != Some("hello")
    {
        return vapi_error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
    }
    let spec: HelloSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return vapi_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &format!("invalid body: {e}"),
            )
        }
    };
    if spec.api_releases.is_empty() || spec.api_releases.len() > 128 {
        return vapi_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "api_releases must list 1 to 128 releases",
        );
    }
    let served = super::vim::releases(&state.world);
    let pick = spec
        .api_releases
        .iter()
        .find(|r| served.contains(r))
        .cloned()
        .unwrap_or_default();
    Json(json!({ "api_release": pick })).into_response()
}

/// `GET /sim/v1/clock`: the world's clock (`unix_ms`) and how much faster than real time it
/// runs (`speed`), so a run driving `sim serve` judges change windows by the same clock.
async fn clock(State(state): State<WorldState>) -> Response {
    Json(json!({ "unix_ms": state.world.clock_ms(), "speed": state.world.speed() })).into_response()
}
