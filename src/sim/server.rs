//! HTTP routing and the per-verb handlers of the sim's Kubernetes API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::discovery;
use super::lifecycle;
use super::openapi;
use super::patch::{self, PatchKind};
use super::resources::{self, ResourceDef, SUBRESOURCES_GROUP, VM_ACTIONS};
use super::schema;
use super::selectors::Selectable;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{go_quote, json_response, ApiError, Cause};
use super::store::{ObjKey, Part, Store, WriteOptions};
use super::table;
use super::watch::{self as watching, WatchRequest};

/// Server-wide state shared by every request.
pub struct ApiState {
    /// The object store.
    pub store: Arc<Store>,
    /// Bodies larger than this answer 413.
    pub max_body_bytes: usize,
    /// Interval of periodic watch bookmarks.
    pub bookmark_interval: Duration,
    /// The server's cap on a watch's life (real API servers end watches after a while;
    /// clients re-watch from their last resourceVersion).
    pub watch_max_duration: Option<Duration>,
    /// `host:port` reported in `/api`.
    pub server_address: String,
    /// Flips to `true` on shutdown; ends watch streams.
    pub shutdown: watch::Receiver<bool>,
    /// Routes of the simulated world (vSphere REST, probes), once set.
    pub extension: Arc<std::sync::OnceLock<Extension>>,
    /// Injected faults.
    pub faults: super::ApiFaults,
    /// Request counters.
    pub stats: Arc<super::ApiStats>,
    /// Who may do what (see [`super::access`]).
    pub access: super::access::Authorizer,
    /// How long a request other than a watch may take, its body included (see
    /// [`super::REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
}

/// Routes served beside the Kubernetes API on the same port (the simulated world's vSphere
/// REST API and network probes), and which paths they answer. The API server forwards
/// those paths without knowing who serves them.
#[derive(Clone)]
pub struct Extension {
    pub router: axum::Router,
    pub handles: fn(&str) -> bool,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Extension { .. }")
    }
}

/// A parsed resource path.
#[derive(Debug)]
struct ResPath {
    res: &'static ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    OpenApiIndex,
    OpenApiDoc(String, String),
    OpenApiV2,
    Health,
    Resource(ResPath),
    VmAction {
        namespace: String,
        name: String,
        action: String,
    },
}

fn parse_route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let nf = || ApiError::no_route(path);
    match segs.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => Ok(Route::Health),
        ["api"] => Ok(Route::CoreVersions),
        ["api", v] => Ok(Route::ResourceList(String::new(), v.to_string())),
        ["api", v, rest @ ..] => parse_resource("", v, rest).ok_or_else(nf),
        ["apis"] => Ok(Route::GroupList),
        ["apis", g] => Ok(Route::Group(g.to_string())),
        ["apis", g, v] => Ok(Route::ResourceList(g.to_string(), v.to_string())),
        ["apis", g, "v1", "namespaces", ns, "virtualmachines", name, action]
            if *g == SUBRESOURCES_GROUP =>
        {
            Ok(Route::VmAction {
                namespace: ns.to_string(),
                name: name.to_string(),
                action: action.to_string(),
            })
        }
        ["apis", g, v, rest @ ..] => parse_resource(g, v, rest).ok_or_else(nf),
        ["openapi", "v3"] => Ok(Route::OpenApiIndex),
        ["openapi", "v3", "api", v] => Ok(Route::OpenApiDoc(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => Ok(Route::OpenApiDoc(g.to_string(), v.to_string())),
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        _ => Err(nf()),
    }
}

fn parse_resource(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let find = |p: &str| resources::find(group, version, p);
    let rp =
        |res: &'static ResourceDef, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
            let ok = match (res.namespaced, ns) {
                (true, None) => name.is_none(),
                (true, Some(_)) => true,
                (false, Some(_)) => false,
                (false, None) => true,
            };
            ok.then(|| {
                Route::Resource(ResPath {
                    res,
                    namespace: ns.map(str::to_string),
                    name: name.map(str::to_string),
                    sub: sub.map(str::to_string),
                })
            })
        };
    match rest {
        ["namespaces", ns, sub] if group.is_empty() && matches!(*sub, "status" | "finalize") => {
            rp(find("namespaces")?, None, Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => rp(find(plural)?, Some(ns), None, None),
        ["namespaces", ns, plural, name] => rp(find(plural)?, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => rp(find(plural)?, Some(ns), Some(name), Some(sub)),
        [plural] => rp(find(plural)?, None, None, None),
        [plural, name] => rp(find(plural)?, None, Some(name), None),
        [plural, name, sub] => rp(find(plural)?, None, Some(name), Some(sub)),
        _ => None,
    }
}

fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

/// The single entry point for every request. Requests other than watches get
/// [`ApiState::request_timeout`] to finish, reading their body included, and 504 Timeout
/// after it, as the API server's timeout filter answers non-long-running requests
/// (staging/src/k8s.io/apiserver/pkg/server/filters/timeout.go; `--request-timeout`, 60 s
/// by default): a client trickling a body cannot hold a connection busy for ever.
pub async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    if is_watch(req.uri()) {
        return serve_request(state, req).await;
    }
    let limit = state.request_timeout;
    match tokio::time::timeout(limit, serve_request(state, req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        )
        .into_response(),
    }
}

async fn serve_request(state: Arc<ApiState>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    if let Some(ext) = state.extension.get() {
        if (ext.handles)(uri.path()) {
            use tower::ServiceExt;
            return match ext.router.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    let n = state.stats.requests.fetch_add(1, Relaxed);
    if is_watch(&uri) {
        state.stats.watches.fetch_add(1, Relaxed);
    }
    if !state.faults.latency.is_zero() {
        tokio::time::sleep(state.faults.latency).await;
    }
    let rate = state.faults.error_rate;
    if !req.headers().contains_key(super::CONTROLLER_HEADER)
        && super::fault::strikes(state.faults.seed ^ n, rate)
    {
        state.stats.injected_errors.fetch_add(1, Relaxed);
        let code = match state.faults.error_code {
            0 => 500,
            c => c,
        };
        tracing::debug!(target: "wavelift::sim", "{method} {uri} -> {code} (injected)");
        let reason = match code {
            429 => "TooManyRequests",
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        return ApiError::new(code, reason, "simulated API server error (scenario fault)")
            .into_response();
    }
    let resp = match dispatch(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(target: "wavelift::sim", "{method} {uri} -> {}", resp.status().as_u16());
    resp
}

fn raw_json(code: StatusCode, body: bytes::Bytes) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok_json(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

async fn dispatch(state: &ApiState, req: Request) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let route = parse_route(&path)?;
    let get_only = |body: Option<Value>| -> Result<Response, ApiError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::method_not_allowed(method.as_str(), &path));
        }
        body.map(|b| ok_json(&b))
            .ok_or_else(|| ApiError::no_route(&path))
    };
    match route {
        Route::Version => get_only(Some(discovery::version())),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::CoreVersions => get_only(Some(discovery::core_versions(&state.server_address))),
        Route::GroupList => get_only(Some(discovery::group_list(state.store.crds()))),
        Route::Group(g) => get_only(discovery::group(&g, state.store.crds())),
        Route::ResourceList(g, v) => get_only(discovery::resource_list(&g, &v, state.store.crds())),
        Route::OpenApiIndex => get_only(Some(openapi::index(state.store.crds()))),
        Route::OpenApiDoc(g, v) => get_only(openapi::document(&g, &v, state.store.crds())),
        Route::OpenApiV2 => Err(ApiError::no_route(&path)),
        Route::VmAction {
            namespace,
            name,
            action,
        } => {
            if method != Method::PUT {
                return Err(ApiError::method_not_allowed(method.as_str(), &path));
            }
            if !req.headers().contains_key(super::CONTROLLER_HEADER) {
                state.access.check(&super::access::Attributes {
                    verb: "update",
                    namespace: &namespace,
                    group: SUBRESOURCES_GROUP,
                    resource: "virtualmachines",
                    subresource: &action,
                    name: &name,
                })?;
            }
            let body = read_body(state, req).await?;
            vm_action(state, &namespace, &name, &action, &body)
        }
        // A CRD that is not installed is not served: 404 as for any unknown path.
        Route::Resource(rp) if !state.store.crds().serves(rp.res) => Err(ApiError::no_route(&path)),
        Route::Resource(rp) => resource(state, rp, method, query, req).await,
    }
}

/// The object a POST or PUT carries, checked (media type, kind, field validation), with
/// its warnings and write options (`dryRun`).
async fn read_object(
    state: &ApiState,
    req: Request,
    res: &ResourceDef,
    query: &HashMap<String, String>,
) -> Result<(Value, Vec<String>, WriteOptions), ApiError> {
    let ct = content_type(req.headers());
    reject_protobuf(&ct)?;
    let options_kind = if req.method() == Method::PUT {
        "UpdateOptions"
    } else {
        "CreateOptions"
    };
    let body = read_body(state, req).await?;
    check_field_validation(query, options_kind)?;
    let obj = parse_object(&ct, &body, state.max_body_bytes)?;
    check_type(res, &obj)?;
    let warnings = field_validation(res, state.store.crds(), query, &obj)?;
    let opts = WriteOptions {
        dry_run: dry_run(query)?,
        ..WriteOptions::default()
    };
    Ok((obj, warnings, opts))
}

async fn read_body(state: &ApiState, req: Request) -> Result<bytes::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return Err(ApiError::too_large(state.max_body_bytes));
    }
    axum::body::to_bytes(req.into_body(), state.max_body_bytes)
        .await
        .map_err(|_| ApiError::too_large(state.max_body_bytes))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn reject_protobuf(ct: &str) -> Result<(), ApiError> {
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return Err(ApiError::unsupported_media(
            "the wavelift sim speaks JSON only and cannot decode protobuf request bodies \
             (as kubectl's imperative `create` commands send for built-in kinds); write the \
             object as YAML and use `kubectl apply -f FILE` instead",
        ));
    }
    Ok(())
}

/// Parse a create/update body (JSON, or YAML for `application/yaml`, whose expansion
/// through anchors and aliases may not exceed `max_bytes`).
fn parse_object(ct: &str, body: &[u8], max_bytes: usize) -> Result<Value, ApiError> {
    reject_protobuf(ct)?;
    let base = ct.split(';').next().unwrap_or_default().trim();
    let v = match base {
        "" | "application/json" | "*/*" => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?,
        "application/yaml" => patch::parse_json_or_yaml_within(body, max_bytes)?,
        other => {
            return Err(ApiError::unsupported_media(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other})"
            )))
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn check_type(res: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let av = obj.get("apiVersion").and_then(Value::as_str);
    let kind = obj.get("kind").and_then(Value::as_str);
    let api_version = res.api_version();
    if av.is_some_and(|a| a != api_version) || kind.is_some_and(|k| k != res.kind) {
        return Err(ApiError::bad_request(format!(
            "the object is {}, Kind={}, but this path serves {api_version}, Kind={}",
            av.unwrap_or(""),
            kind.unwrap_or(""),
            res.kind
        )));
    }
    Ok(())
}

/// The `fieldValidation` query parameter is one of the values the API server accepts, or
/// the request is 422 Invalid against its options kind (`CreateOptions`, `UpdateOptions`,
/// `PatchOptions`): apimachinery pkg/apis/meta/v1/validation/validation.go
/// `ValidateFieldValidation` (`allowedFieldValidationValues`, case-sensitive), called by
/// the create, update and patch handlers (staging/src/k8s.io/apiserver/pkg/endpoints/
/// handlers/{create,update,patch}.go) after the body is read.
fn check_field_validation(
    query: &HashMap<String, String>,
    options_kind: &str,
) -> Result<(), ApiError> {
    let value = query.get("fieldValidation").map_or("", String::as_str);
    if matches!(value, "" | "Ignore" | "Warn" | "Strict") {
        return Ok(());
    }
    Err(ApiError::invalid_exact(
        options_kind,
        "meta.k8s.io",
        "",
        vec![Cause::not_supported(
            "fieldValidation",
            format!(
                "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                go_quote(value)
            ),
        )],
    ))
}

/// An int64 query parameter (`timeoutSeconds`, `limit`) as the API server's parameter
/// codec decodes it (apimachinery pkg/runtime/conversion.go
/// `Convert_Slice_string_To_Pointer_int64`, i.e. `strconv.ParseInt(s, 10, 64)`): a value
/// that is not an int64 is 400 Bad Request with strconv's message.
fn query_i64(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    let Some(s) = query.get(key) else {
        return Ok(None);
    };
    s.parse::<i64>().map(Some).map_err(|e| {
        use std::num::IntErrorKind::{NegOverflow, PosOverflow};
        let why = match e.kind() {
            PosOverflow | NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!("strconv.ParseInt: parsing {}: {why}", go_quote(s)))
    })
}

/// `fieldValidation`: Strict rejects unknown fields; Warn (the default) reports them in
/// `Warning` headers; Ignore drops the check. Unknown fields are kept either way (the sim
/// does not prune).
fn field_validation(
    res: &ResourceDef,
    crds: &super::resources::Crds,
    query: &HashMap<String, String>,
    obj: &Value,
) -> Result<Vec<String>, ApiError> {
    let mode = query
        .get("fieldValidation")
        .map(String::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or("Warn");
    if mode == "Ignore" {
        return Ok(Vec::new());
    }
    let unknown = schema::unknown_fields(&super::kind_schema::for_kind_in(res, crds), obj);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    if mode == "Strict" {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            res.kind,
            res.api_version(),
            res.kind,
            list.join(", ")
        )));
    }
    Ok(unknown
        .into_iter()
        .map(|f| format!("299 - \"unknown field \\\"{f}\\\"\""))
        .collect())
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = header::HeaderValue::from_str(w) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported dryRun value {other:?}: only \"All\" is supported"
        ))),
    }
}

/// A DeleteOptions (or action options) body; empty means `{}`.
fn delete_options(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid options body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the options body must be a JSON object",
        ));
    }
    Ok(v)
}

/// DeleteOptions' `gracePeriodSeconds`: from the body when there is one, else from the
/// query (apiserver `pkg/endpoints/handlers/delete.go` `DeleteResource` and
/// `DeleteCollection` decode a non-empty body, else the query parameters).
fn grace_period(body: &[u8], query: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let opts = delete_options(body)?;
        return match opts.get("gracePeriodSeconds") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid options body: gracePeriodSeconds: {v} is not an integer"
                ))
            }),
        };
    }
    match query.get("gracePeriodSeconds").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "gracePeriodSeconds: invalid value {v:?}: not an integer"
            ))
        }),
    }
}

/// `dryRun: ["All"]` inside an options body.
fn body_dry_run(body: &[u8]) -> Result<bool, ApiError> {
    Ok(delete_options(body)?
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All")))
}

fn is_true(query: &HashMap<String, String>, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true" | "1"))
}

async fn resource(
    state: &ApiState,
    rp: ResPath,
    method: Method,
    query: HashMap<String, String>,
    req: Request,
) -> Result<Response, ApiError> {
    let res = rp.res;
    let ns = rp.namespace.clone().unwrap_or_default();
    let part = match rp.sub.as_deref() {
        None => Part::Main,
        Some("status") if res.has_status => Part::Status,
        Some("finalize") if res.kind == "Namespace" => Part::Main,
        Some(other) => {
            return Err(ApiError::no_route(&format!("{}/{other}", res.plural)));
        }
    };
    if !req.headers().contains_key(super::CONTROLLER_HEADER) {
        state.access.authorize(
            &method,
            is_true(&query, "watch"),
            res,
            rp.namespace.as_deref(),
            rp.name.as_deref(),
            rp.sub.as_deref(),
        )?;
    }
    if res.create_only() {
        // SelfSubjectAccessReview: answered, never stored (see `access`).
        if method != Method::POST || rp.name.is_some() {
            return Err(ApiError::method_not_allowed(method.as_str(), res.plural));
        }
        let (obj, warnings) =
            if content_type(req.headers()).starts_with("application/vnd.kubernetes.protobuf") {
                let body = read_body(state, req).await?;
                (super::access::review_from_protobuf(&body)?, Vec::new())
            } else {
                let (obj, warnings, _) = read_object(state, req, res, &query).await?;
                (obj, warnings)
            };
        let answer = state.access.review(&obj)?;
        return Ok(with_warnings(
            json_response(StatusCode::CREATED, &answer),
            &warnings,
        ));
    }
    let store = &state.store;
    let as_table = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(table::wants_table);
    let Some(name) = rp.name.clone() else {
        return match method {
            Method::GET => {
                let labels =
                    LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
                let fields = FieldSelector::parse(
                    query.get("fieldSelector").map_or("", String::as_str),
                    res.kind,
                )?;
                if is_true(&query, "watch") {
                    let since = match query.get("resourceVersion").map(String::as_str) {
                        None | Some("") => None,
                        Some(s) => Some(s.parse::<u64>().map_err(|_| {
                            ApiError::bad_request(format!("invalid resourceVersion {s:?}"))
                        })?),
                    };
                    let timeout = query_i64(&query, "timeoutSeconds")?;
                    let wr = WatchRequest {
                        res,
                        namespace: rp.namespace.clone(),
                        labels,
                        fields,
                        since,
                        timeout,
                        bookmarks: is_true(&query, "allowWatchBookmarks"),
                        send_initial_events: is_true(&query, "sendInitialEvents"),
                        max_duration: state.watch_max_duration,
                        table: as_table,
                    };
                    return Ok(watching::serve(
                        &state.store,
                        wr,
                        state.bookmark_interval,
                        state.shutdown.clone(),
                    ));
                }
                // Pagination (`limit`, `continue`): pages follow the store's key order; a
                // continued page reports the first page's resourceVersion, so a watch
                // started from it replays whatever changed in between. A limit of zero or
                // less means none, as for the API server.
                let limit = query_i64(&query, "limit")?
                    .filter(|l| *l > 0)
                    .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
                let scope = ListScope {
                    res,
                    namespace: rp.namespace.as_deref(),
                };
                let cont = match query.get("continue").filter(|c| !c.is_empty()) {
                    None => None,
                    Some(c) => {
                        if !matches!(
                            query.get("resourceVersion").map(String::as_str),
                            None | Some("" | "0")
                        ) {
                            return Err(ApiError::bad_request(
                                "specifying resource version is not allowed when using continue",
                            ));
                        }
                        Some(decode_continue(c, &scope, store.current_rv())?)
                    }
                };
                let filter = |o: &Selectable| labels.matches(o) && fields.matches(o);
                let (items, rv, next) = match (limit, cont) {
                    (None, None) => {
                        let (items, rv) = store.list(res, rp.namespace.as_deref(), filter);
                        (items, rv, None)
                    }
                    (limit, cont) => {
                        let (first_rv, start) = match cont {
                            Some((rv, start)) => (rv, start),
                            None => (None, std::ops::Bound::Unbounded),
                        };
                        let (items, rv, next) = store.list_page(
                            res,
                            rp.namespace.as_deref(),
                            filter,
                            start,
                            limit.unwrap_or(usize::MAX),
                        );
                        let rv = first_rv.unwrap_or(rv);
                        (items, rv, next.map(|key| encode_continue(rv, &key, &scope)))
                    }
                };
                if as_table {
                    let objects = items.iter().map(|i| i.value()).collect();
                    let mut t = table::table(res, objects, Some(rv));
                    if let Some(c) = &next {
                        t["metadata"]["continue"] = Value::String(c.clone());
                    }
                    return Ok(ok_json(&t));
                }
                // Items are stored serialised: the list is sent as the frames of its
                // text, each item by reference to the stored object, so a LIST copies no
                // object however large the resource and however many LISTs run at once.
                let mut frames = std::collections::VecDeque::with_capacity(items.len() * 2 + 2);
                frames.push_back(bytes::Bytes::from(format!(
                    "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"{}}},\"items\":[",
                    res.list_kind(),
                    res.api_version(),
                    next.map(|c| format!(",\"continue\":\"{c}\""))
                        .unwrap_or_default()
                )));
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        frames.push_back(bytes::Bytes::from_static(b","));
                    }
                    frames.push_back(item.json.clone());
                }
                frames.push_back(bytes::Bytes::from_static(b"]}"));
                Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::new(Frames::new(frames)),
                )
                    .into_response())
            }
            Method::POST => {
                if res.namespaced && rp.namespace.is_none() {
                    return Err(ApiError::method_not_allowed("POST", res.plural));
                }
                let (obj, warnings, opts) = read_object(state, req, res, &query).await?;
                let created = store.create(res, &ns, obj, &opts)?;
                Ok(with_warnings(
                    json_response(StatusCode::CREATED, &created),
                    &warnings,
                ))
            }
            Method::DELETE => {
                let labels =
                    LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
                let fields = FieldSelector::parse(
                    query.get("fieldSelector").map_or("", String::as_str),
                    res.kind,
                )?;
                let body = read_body(state, req).await?;
                let opts = WriteOptions {
                    dry_run: dry_run(&query)? || body_dry_run(&body)?,
                    ..WriteOptions::default()
                };
                let grace = grace_period(&body, &query)?;
                let (items, _) = store.list(res, rp.namespace.as_deref(), |o| {
                    labels.matches(o) && fields.matches(o)
                });
                let mut deleted = Vec::new();
                for item in items {
                    let (ns, name) = (&item.sel.namespace, &item.sel.name);
                    match store.delete_with(res, ns, name, (None, None), grace, &opts) {
                        Ok(gone) => deleted.push(gone),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(ok_json(&json!({
                    "kind": res.list_kind(),
                    "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": store.current_rv().to_string()},
                    "items": deleted,
                })))
            }
            m => Err(ApiError::method_not_allowed(m.as_str(), res.plural)),
        };
    };
    match method {
        Method::GET => {
            let o = store
                .get_stored(res, &ns, &name)
                .ok_or_else(|| ApiError::not_found(res.plural, res.group, &name))?;
            if as_table {
                return Ok(ok_json(&table::table(res, vec![o.value()], Some(o.rv))));
            }
            Ok(raw_json(StatusCode::OK, o.json.clone()))
        }
        Method::PUT => {
            let (obj, warnings, opts) = read_object(state, req, res, &query).await?;
            let (updated, created) = store.replace(res, &ns, &name, part, obj, &opts)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(json_response(code, &updated), &warnings))
        }
        Method::PATCH => {
            let ct = content_type(req.headers());
            reject_protobuf(&ct)?;
            let kind = PatchKind::from_content_type(&ct).ok_or_else(|| {
                ApiError::unsupported_media(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{} (got {ct:?})",
                    if res.builtin { ", application/strategic-merge-patch+json" } else { "" }
                ))
            })?;
            if kind == PatchKind::Strategic && !res.builtin {
                return Err(ApiError::unsupported_media(format!(
                    "strategic merge patch is not supported for custom resources ({}.{}): use application/merge-patch+json",
                    res.plural, res.group
                )));
            }
            let body = read_body(state, req).await?;
            check_field_validation(&query, "PatchOptions")?;
            let opts = WriteOptions {
                dry_run: dry_run(&query)?,
                ..WriteOptions::default()
            };
            let force = is_true(&query, "force");
            if force && kind != PatchKind::Apply {
                return Err(ApiError::bad_request(
                    "force is only valid for apply patches",
                ));
            }
            let (result, created, warnings) = if kind == PatchKind::Apply {
                let manager = query
                    .get("fieldManager")
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_request("PATCH with apply-patch+yaml requires fieldManager")
                    })?
                    .clone();
                let applied = patch::parse_json_or_yaml_within(&body, state.max_body_bytes)?;
                let warnings = field_validation(res, state.store.crds(), &query, &applied)?;
                let (r, c) = store.mutate(
                    res,
                    &ns,
                    &name,
                    part,
                    &WriteOptions {
                        create_if_absent: true,
                        ..opts.clone()
                    },
                    |cur| {
                        patch::check_apply_uid(res, &name, cur, &applied)?;
                        patch::server_side_apply(
                            res,
                            cur,
                            &applied,
                            &manager,
                            force,
                            part == Part::Status,
                        )
                    },
                )?;
                (r, c, warnings)
            } else {
                // Validate the body shape for merge-style patches, the result for JSON Patch.
                let mut warnings = Vec::new();
                if kind != PatchKind::Json {
                    let p: Value = serde_json::from_slice(&body).map_err(|e| {
                        ApiError::bad_request(format!("the patch body is not valid JSON: {e}"))
                    })?;
                    warnings = field_validation(res, state.store.crds(), &query, &p)?;
                }
                let mut json_warnings = Vec::new();
                let (r, c) = store.mutate(res, &ns, &name, part, &opts, |cur| {
                    let cur =
                        cur.ok_or_else(|| ApiError::not_found(res.plural, res.group, &name))?;
                    let patched = patch::apply_patch(cur, kind, &body, state.max_body_bytes)?;
                    patch::check_patched(res, cur, &patched)?;
                    if kind == PatchKind::Json {
                        json_warnings =
                            field_validation(res, state.store.crds(), &query, &patched)?;
                    }
                    Ok(patched)
                })?;
                warnings.extend(json_warnings);
                (r, c, warnings)
            };
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(json_response(code, &result), &warnings))
        }
        Method::DELETE => {
            if part != Part::Main || rp.sub.is_some() {
                return Err(ApiError::method_not_allowed("DELETE", "status"));
            }
            let body = read_body(state, req).await?;
            let opts_body = delete_options(&body)?;
            let opts = WriteOptions {
                dry_run: dry_run(&query)? || body_dry_run(&body)?,
                ..WriteOptions::default()
            };
            let uid = opts_body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str);
            let rv = opts_body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let grace = grace_period(&body, &query)?;
            let gone = store.delete_with(res, &ns, &name, (uid, rv), grace, &opts)?;
            Ok(ok_json(&gone))
        }
        m => Err(ApiError::method_not_allowed(m.as_str(), res.plural)),
    }
}

/// `PUT /apis/subresources.kubevirt.io/v1/namespaces/NS/virtualmachines/NAME/ACTION`
/// (start, stop, restart, migrate) as virt-api serves them (see [`lifecycle`]); 202 with an
/// empty body. The query string is not read: virt-api takes its options (`dryRun`
/// included) from the body only.
fn vm_action(
    state: &ApiState,
    ns: &str,
    name: &str,
    action: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    if !VM_ACTIONS.contains(&action) {
        return Err(ApiError::no_route(&format!("virtualmachines/{action}")));
    }
    lifecycle::vm_action(&state.store, ns, name, action, body)?;
    Ok((StatusCode::ACCEPTED, Body::empty()).into_response())
}

/// What a list covers: its resource and namespace (`None`: all, or cluster-scoped). A
/// continue token's start key is relative to it, as the API server's is relative to the
/// list's etcd key prefix.
struct ListScope<'a> {
    res: &'static ResourceDef,
    namespace: Option<&'a str>,
}

impl ListScope<'_> {
    /// The key of an object below the list's prefix: `NAME` within one namespace or for a
    /// cluster-scoped resource, `NAMESPACE/NAME` across namespaces.
    fn key_string(&self, (ns, name): &ObjKey) -> String {
        if self.res.namespaced && self.namespace.is_none() {
            format!("{ns}/{name}")
        } else {
            name.clone()
        }
    }

    fn obj_key(&self, key: &str) -> ObjKey {
        match (self.res.namespaced, self.namespace) {
            (true, None) => match key.split_once('/') {
                Some((ns, name)) => (ns.to_string(), name.to_string()),
                None => (key.to_string(), String::new()),
            },
            (true, Some(ns)) => (ns.to_string(), key.to_string()),
            (false, _) => (String::new(), key.to_string()),
        }
    }
}

/// The API server's continue token (staging/src/k8s.io/apiserver/pkg/storage/continue.go
/// `continueToken`): base64url (unpadded) of `{"v":"meta.k8s.io/v1","rv":RV,"start":KEY}`,
/// where KEY is the last key served followed by a NUL byte (the first key after it).
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: u64, key: &ObjKey, scope: &ListScope<'_>) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv: i64::try_from(rv).unwrap_or(i64::MAX),
        start: format!("{}\0", scope.key_string(key)),
    };
    base64url_encode(&serde_json::to_vec(&token).unwrap_or_default())
}

/// Decode a continue token as `storage.DecodeContinue` does, with its messages: anything
/// that is not a token the server could have issued is 400 Bad Request ("invalid continue
/// token", as `storage.ValidateListOptions` and the etcd3 store's `GetList` answer). A
/// start key that is not a clean path (`..`, `//`) is refused, as upstream defends against
/// path traversal. A resourceVersion below zero continues at the latest one; one newer
/// than this server's (a token from an earlier run of the sim) is 410 Expired, so the
/// client starts its list again. Returns the list's resourceVersion (`None`: the current
/// one) and where the page starts.
fn decode_continue(
    token: &str,
    scope: &ListScope<'_>,
    current_rv: u64,
) -> Result<(Option<u64>, std::ops::Bound<ObjKey>), ApiError> {
    const INVALID: &str = "continue key is not valid";
    let bad = |why: String| ApiError::bad_request(format!("invalid continue token: {why}"));
    let data = base64url_decode(token)
        .map_err(|at| bad(format!("{INVALID}: illegal base64 data at input byte {at}")))?;
    let c: ContinueToken =
        serde_json::from_slice(&data).map_err(|e| bad(format!("{INVALID}: {e}")))?;
    if c.v != "meta.k8s.io/v1" {
        return Err(bad(format!(
            "{INVALID}: server does not recognize this encoded version {}",
            c.v
        )));
    }
    if c.rv == 0 {
        return Err(bad(format!(
            "{INVALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        )));
    }
    if c.start.is_empty() {
        return Err(bad(format!(
            "{INVALID}: encoded start key empty (version meta.k8s.io/v1)"
        )));
    }
    let rooted = if c.start.starts_with('/') {
        c.start.clone()
    } else {
        format!("/{}", c.start)
    };
    if !is_clean_path(&rooted) {
        return Err(bad(format!("{INVALID}: {}", c.start)));
    }
    let key = &rooted[1..];
    let rv = match u64::try_from(c.rv) {
        Err(_) => None,
        Ok(rv) if rv > current_rv => {
            return Err(ApiError::new(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ))
        }
        Ok(rv) => Some(rv),
    };
    let start = match key.strip_suffix('\0') {
        Some(last) => std::ops::Bound::Excluded(scope.obj_key(last)),
        None => std::ops::Bound::Included(scope.obj_key(key)),
    };
    Ok((rv, start))
}

/// `path.Clean(p) == p` for a rooted path: no empty, `.` or `..` segments and no trailing
/// slash.
fn is_clean_path(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && !p.ends_with('/')
            && p[1..].split('/').all(|seg| !matches!(seg, "" | "." | "..")))
}

/// Unpadded base64url (Go's `base64.RawURLEncoding`).
fn base64url_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    crate::sim::go_base64::RAW_URL.encode(input)
}

/// Decode unpadded base64url; the error is the offset Go's `CorruptInputError` names: the
/// first byte that is not base64url, or the last one for a length no encoding has.
fn base64url_decode(input: &str) -> Result<Vec<u8>, usize> {
    use base64::{DecodeError, Engine as _};
    crate::sim::go_base64::RAW_URL
        .decode(input)
        .map_err(|e| match e {
            DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _) => at,
            DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
                input.len().saturating_sub(1)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_forgeries() {
        let res = resources::find("", "v1", "secrets").expect("secrets");
        let scope = ListScope {
            res,
            namespace: None,
        };
        let key = ("default".to_string(), "s1".to_string());
        let token = encode_continue(7, &key, &scope);
        let (rv, start) = decode_continue(&token, &scope, 9).expect("decodes");
        assert_eq!(rv, Some(7));
        assert_eq!(start, std::ops::Bound::Excluded(key));
        let forged = |json: &str| decode_continue(&base64url_encode(json.as_bytes()), &scope, 9);
        let e = forged(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#).expect_err("rv 0");
        assert_eq!(e.code, 400);
        assert!(e
            .message
            .contains("incorrect encoded start resourceVersion"));
        let e = forged(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../x"}"#).expect_err("..");
        assert_eq!(
            e.message,
            "invalid continue token: continue key is not valid: ../x"
        );
        let e = forged(r#"{"v":"meta.k8s.io/v1","rv":30,"start":"a/b"}"#).expect_err("future");
        assert_eq!(e.code, 410);
        let (rv, _) = forged(r#"{"v":"meta.k8s.io/v1","rv":-1,"start":"a/b"}"#).expect("latest");
        assert_eq!(rv, None);
        assert_eq!(
            decode_continue("zz!", &scope, 9)
                .expect_err("not base64")
                .code,
            400
        );
        assert_eq!(
            base64url_decode(&base64url_encode(b"hello")),
            Ok(b"hello".to_vec())
        );
    }
}

/// A body sent as a sequence of shared buffers, with its length known (so it goes out with
/// a `Content-Length`, as one buffer would).
struct Frames {
    frames: std::collections::VecDeque<bytes::Bytes>,
    left: u64,
}

impl Frames {
    fn new(frames: std::collections::VecDeque<bytes::Bytes>) -> Self {
        let left = frames.iter().map(|f| f.len() as u64).sum();
        Frames { frames, left }
    }
}

impl hyper::body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let next = this.frames.pop_front().map(|f| {
            this.left -= f.len() as u64;
            Ok(hyper::body::Frame::data(f))
        });
        std::task::Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

/// The bytes of a response body, with the connection marked busy until they are sent
/// (or the body is dropped): a connection serving a request, a watch included, is never
/// evicted as idle.
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// One open connection: its requests in flight, and the signal that evicts it.
#[derive(Default)]
struct Slot {
    busy: std::sync::atomic::AtomicUsize,
    evict: tokio::sync::Notify,
}

/// A request in flight on a connection.
struct Busy(Arc<Slot>);

impl Busy {
    fn new(slot: &Arc<Slot>) -> Self {
        slot.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Busy(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .busy
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    next: u64,
    open: std::collections::BTreeMap<u64, Arc<Slot>>,
}

impl Registry {
    /// Close the oldest connection with no request in flight; whether there was one.
    fn evict_oldest_idle(&mut self) -> bool {
        let idle = self
            .open
            .iter()
            .find(|(_, s)| s.busy.load(std::sync::atomic::Ordering::SeqCst) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(slot) => {
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serve HTTP/1.1 on `listener` until `stop` turns true, then close the connections
/// gracefully (watches end on the same signal) and return once they are closed.
///
/// The API server's own defences against its clients are timeouts
/// (staging/src/k8s.io/apiserver/pkg/server/secure_serving.go: `ReadHeaderTimeout` 32 s,
/// `IdleTimeout` 90 s, `MaxHeaderBytes` 1 MiB) and the file descriptors Go raises to the
/// hard limit. The sim keeps the header timeout — hyper's timer also runs while a
/// keep-alive connection waits for its next request, so idle connections close after it
/// too — and bounds its connections: at [`super::ConnLimits::max_connections`] a new
/// connection closes the oldest one with no request in flight (an idle keep-alive or one
/// still sending its headers), and is itself closed at once when every connection is
/// busy. When the process runs out of descriptors, the oldest idle connection is closed
/// to free one. A flood of idle connections thus cannot lock other clients out.
pub(crate) async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: super::ConnLimits,
    stats: Arc<super::ApiStats>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let registry = Arc::new(std::sync::Mutex::new(Registry::default()));
    let open_count = |r: &Arc<std::sync::Mutex<Registry>>| {
        r.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .open
            .len()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        while tasks.try_join_next().is_some() {}
        if *stop.borrow() {
            break;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            changed = stop.changed() => {
                // The handle went away without a shutdown: stop as for one.
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                // taken: free a descriptor if any is idle, and take a breath.
                tracing::debug!(target: "wavelift::sim", "accept: {e}");
                if registry
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .evict_oldest_idle()
                {
                    stats.connections_evicted.fetch_add(1, Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        stats.connections_accepted.fetch_add(1, Relaxed);
        let (id, slot) = {
            let mut reg = registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if reg.open.len() >= limits.max_connections.max(1) {
                if !reg.evict_oldest_idle() {
                    stats.connections_refused.fetch_add(1, Relaxed);
                    drop(stream);
                    continue;
                }
                stats.connections_evicted.fetch_add(1, Relaxed);
            }
            let id = reg.next;
            reg.next += 1;
            let slot = Arc::new(Slot::default());
            reg.open.insert(id, slot.clone());
            (id, slot)
        };
        stats
            .connections_open
            .store(open_count(&registry) as u64, Relaxed);
        // Nagle's algorithm stays on, as under `axum::serve` before: with TCP_NODELAY
        // (Go's default, so the API server's) the simulated controllers' timing races
        // surface in tests/sim/kubevirt.rs (a restart and an in-flight migration).
        let app = app.clone();
        let conn_slot = slot.clone();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let busy = Busy::new(&conn_slot);
                async move {
                    use tower::ServiceExt;
                    let resp = match app.oneshot(req.map(Body::new)).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|inner| Tracked { inner, _busy: busy }),
                    )
                }
            });
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let registry = registry.clone();
        let stats = stats.clone();
        let mut stop = stop.clone();
        tasks.spawn(async move {
            tokio::pin!(conn);
            let graceful = tokio::select! {
                _ = conn.as_mut() => false,
                () = slot.evict.notified() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if graceful {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .open
                .remove(&id);
            stats
                .connections_open
                .store(open_count(&registry) as u64, Relaxed);
        });
    }
    while tasks.join_next().await.is_some() {}
}
