//! Kubernetes `Status` error objects: every failure the sim answers is one of these.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One field-level cause inside a `Status` (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Field path such as `spec.template.spec.networks[0].name`.
    pub field: String,
    /// Machine-readable reason, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Cause {
    /// A required field is missing.
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
        }
    }

    /// A field holds an invalid value.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueInvalid".into(),
            message: message.into(),
        }
    }

    /// A value is not among the supported ones.
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueNotSupported".into(),
            message: message.into(),
        }
    }

    /// A field is set twice or duplicates another.
    pub fn duplicate(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueDuplicate".into(),
            message: message.into(),
        }
    }

    /// A value has the wrong JSON type (apimachinery `field.TypeInvalid`).
    pub fn type_invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueTypeInvalid".into(),
            message: message.into(),
        }
    }

    /// A value is longer than allowed (apimachinery `field.TooLong`).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: may not be more than {max_bytes} bytes"),
        }
    }

    /// A value refers to something that does not exist.
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: "FieldValueNotFound".into(),
            message: message.into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"field": self.field, "reason": self.reason, "message": self.message})
    }
}

/// A failed API call, rendered as a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (NotFound, AlreadyExists, Conflict, Invalid, BadRequest, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `details` (boxed: errors travel in every `Result` of the request path).
    pub details: Option<Box<ErrorDetails>>,
}

/// `details` of a `Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// `details.name`.
    pub name: String,
    /// `details.group`.
    pub group: String,
    /// `details.kind` (the plural resource for most errors, as a real server does).
    pub kind: String,
    /// `details.causes`.
    pub causes: Vec<Cause>,
}

impl ApiError {
    /// A bare error with a code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Fill `details.{name, group, kind}`.
    pub fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let d = self.details.get_or_insert_with(Box::default);
        d.name = name.into();
        d.group = group.into();
        d.kind = kind.into();
        self
    }

    /// Set `details.causes`.
    pub fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        self.details.get_or_insert_with(Box::default).causes = causes;
        self
    }

    /// `details.causes` (empty without details).
    pub fn causes(&self) -> &[Cause] {
        self.details.as_ref().map_or(&[], |d| d.causes.as_slice())
    }

    /// `resource.group "name" not found` (404).
    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(plural, group)),
        )
        .with_details(name, group, plural)
    }

    /// 404 for a path that names no known resource.
    pub fn no_route(path: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// `resource.group "name" already exists` (409).
    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(plural, group)),
        )
        .with_details(name, group, plural)
    }

    /// Optimistic-concurrency conflict (409).
    pub fn conflict(plural: &str, group: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(plural, group)
            ),
        )
        .with_details(name, group, plural)
    }

    /// 422 Invalid with field causes.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: [{}]",
                qualified(kind, group),
                list.join(", ")
            ),
        )
        .with_details(name, group, kind)
        .with_causes(causes)
    }

    /// 422 Invalid worded exactly as apimachinery `errors.NewInvalid` words it: one cause
    /// stands alone, several are listed in brackets (`[a, b]`, the aggregate's form).
    pub fn invalid_exact(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = match list.as_slice() {
            [one] => one.clone(),
            _ => format!("[{}]", list.join(", ")),
        };
        ApiError::new(
            422,
            "Invalid",
            format!(
                "{} {} is invalid: {joined}",
                qualified(kind, group),
                go_quote(name)
            ),
        )
        .with_details(name, group, kind)
        .with_causes(causes)
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media(message: impl Into<String>) -> Self {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    /// 413 Request Entity Too Large, as apiserver `limitedReadBody`
    /// (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go) answers a body over
    /// `MaxRequestBodyBytes`.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// What the API server answers when etcd refuses to store an object over its request
    /// limit (`--max-request-bytes`, 1.5 MiB by default): the registry passes etcd's
    /// `rpctypes.ErrRequestTooLarge` up unconverted (staging/src/k8s.io/apiserver/pkg/
    /// storage/etcd3/store.go `Create`/`GuaranteedUpdate` return the Txn error as is), and
    /// `responsewriters.ErrorToAPIStatus` (staging/src/k8s.io/apiserver/pkg/endpoints/
    /// handlers/responsewriters/status.go) turns any error that is not a Status into a 500
    /// with an empty reason and the error's text (kubernetes/kubernetes#74600, #112152).
    pub fn etcd_request_too_large() -> Self {
        ApiError::new(500, "", "etcdserver: request is too large")
    }

    /// 405 Method Not Allowed.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    /// 410 Gone / Expired: the requested resourceVersion left the retained window.
    pub fn expired(rv: u64, oldest: u64) -> Self {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {rv} ({oldest})"),
        )
    }

    /// 500 Internal Error.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        // `reason` is `omitempty`: an unknown reason (a 500 from a non-Status error) has none.
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            for (k, v) in [("name", &d.name), ("group", &d.group), ("kind", &d.kind)] {
                if !v.is_empty() || k == "group" {
                    details.insert(k.into(), json!(v));
                }
            }
            if !d.causes.is_empty() {
                details.insert(
                    "causes".into(),
                    Value::Array(d.causes.iter().map(Cause::to_json).collect()),
                );
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// A string as Go's `%q` (strconv.Quote) writes it, for the messages that quote values.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

/// A JSON response with the given status code.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}
