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
use super::status::{json_response, ApiError};
use super::store::{Part, Store, WriteOptions};
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

/// The single entry point for every request.
pub async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
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
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
    {
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
        Route::GroupList => get_only(Some(discovery::group_list())),
        Route::Group(g) => get_only(discovery::group(&g)),
        Route::ResourceList(g, v) => get_only(discovery::resource_list(&g, &v)),
        Route::OpenApiIndex => get_only(Some(openapi::index())),
        Route::OpenApiDoc(g, v) => get_only(openapi::document(&g, &v)),
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
    let body = read_body(state, req).await?;
    let obj = parse_object(&ct, &body)?;
    check_type(res, &obj)?;
    let warnings = field_validation(res, query, &obj)?;
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

/// Parse a create/update body (JSON, or YAML for `application/yaml`).
fn parse_object(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    reject_protobuf(ct)?;
    let base = ct.split(';').next().unwrap_or_default().trim();
    let v = match base {
        "" | "application/json" | "*/*" => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?,
        "application/yaml" => patch::parse_json_or_yaml(body)?,
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

/// `fieldValidation`: Strict rejects unknown fields; Warn (the default) reports them in
/// `Warning` headers; Ignore drops the check. Unknown fields are kept either way (the sim
/// does not prune).
fn field_validation(
    res: &ResourceDef,
    query: &HashMap<String, String>,
    obj: &Value,
) -> Result<Vec<String>, ApiError> {
    let mode = query
        .get("fieldValidation")
        .map(String::as_str)
        .unwrap_or("Warn");
    if mode.eq_ignore_ascii_case("Ignore") {
        return Ok(Vec::new());
    }
    let unknown = schema::unknown_fields(&schema::for_kind(res), obj);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    if mode.eq_ignore_ascii_case("Strict") {
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
                    let timeout = query
                        .get("timeoutSeconds")
                        .map(|s| {
                            s.parse::<u64>().map_err(|_| {
                                ApiError::bad_request(format!("invalid timeoutSeconds {s:?}"))
                            })
                        })
                        .transpose()?
                        .map(Duration::from_secs);
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
                        store,
                        wr,
                        state.bookmark_interval,
                        state.shutdown.clone(),
                    ));
                }
                // Pagination (`limit`, `continue`): pages follow the store's key order; a
                // continued page reports the first page's resourceVersion, so a watch
                // started from it replays whatever changed in between.
                let limit = match query.get("limit") {
                    None => None,
                    Some(l) => Some(
                        l.parse::<usize>()
                            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
                    ),
                }
                .filter(|l| *l > 0);
                let cont = match query.get("continue").filter(|c| !c.is_empty()) {
                    None => None,
                    Some(c) => Some(decode_continue(c).ok_or_else(|| {
                        ApiError::new(
                            410,
                            "Expired",
                            "the provided continue parameter is not valid: start the list again",
                        )
                    })?),
                };
                let filter = |o: &Selectable| labels.matches(o) && fields.matches(o);
                let (items, rv, next) = match (limit, cont) {
                    (None, None) => {
                        let (items, rv) = store.list(res, rp.namespace.as_deref(), filter);
                        (items, rv, None)
                    }
                    (limit, cont) => {
                        let (first_rv, after) = match cont {
                            Some((rv, after)) => (Some(rv), Some(after)),
                            None => (None, None),
                        };
                        let (items, rv, next) = store.list_page(
                            res,
                            rp.namespace.as_deref(),
                            filter,
                            after,
                            limit.unwrap_or(usize::MAX),
                        );
                        let rv = first_rv.unwrap_or(rv);
                        (items, rv, next.map(|key| encode_continue(rv, &key)))
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
                // Items are stored serialised: splice them into the list as they are.
                let size: usize = items.iter().map(|i| i.json.len() + 1).sum();
                let mut body = Vec::with_capacity(size + 160);
                body.extend_from_slice(
                    format!(
                        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"{}}},\"items\":[",
                        res.list_kind(),
                        res.api_version(),
                        next.map(|c| format!(",\"continue\":\"{c}\""))
                            .unwrap_or_default()
                    )
                    .as_bytes(),
                );
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&item.json);
                }
                body.extend_from_slice(b"]}");
                Ok(raw_json(StatusCode::OK, body.into()))
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
                let (items, _) = store.list(res, rp.namespace.as_deref(), |o| {
                    labels.matches(o) && fields.matches(o)
                });
                let mut deleted = Vec::new();
                for item in items {
                    let (ns, name) = (&item.sel.namespace, &item.sel.name);
                    match store.delete(res, ns, name, (None, None), &opts) {
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
                let applied = patch::parse_json_or_yaml(&body)?;
                let warnings = field_validation(res, &query, &applied)?;
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
                    warnings = field_validation(res, &query, &p)?;
                }
                let mut json_warnings = Vec::new();
                let (r, c) = store.mutate(res, &ns, &name, part, &opts, |cur| {
                    let cur =
                        cur.ok_or_else(|| ApiError::not_found(res.plural, res.group, &name))?;
                    let patched = patch::apply_patch(cur, kind, &body)?;
                    if kind == PatchKind::Json {
                        json_warnings = field_validation(res, &query, &patched)?;
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
            let gone = store.delete(res, &ns, &name, (uid, rv), &opts)?;
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

/// A continue token: the list's resourceVersion and the last key served, hex-encoded (so
/// it needs no escaping in JSON or a query string).
fn encode_continue(rv: u64, (ns, name): &(String, String)) -> String {
    let raw = format!("{rv}/{ns}/{name}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Option<(u64, (String, String))> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let raw = String::from_utf8(bytes?).ok()?;
    let mut parts = raw.splitn(3, '/');
    let rv = parts.next()?.parse().ok()?;
    let ns = parts.next()?.to_string();
    let name = parts.next()?.to_string();
    Some((rv, (ns, name)))
}
