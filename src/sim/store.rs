//! The in-memory object store: objects per resource, a global resourceVersion, a bounded
//! event history per resource for watches, and broadcast fan-out to live watchers.
//!
//! Concurrency choice: one `std::sync::Mutex` around the whole store, held only for short
//! synchronous sections (a lookup, or validate + commit + publish of one write) and never
//! across an `.await`. Writes are serialised, which gives a total order of
//! resourceVersions for free; reads are cheap because objects are kept serialised
//! (`Arc<Stored>`: JSON bytes plus the few fields selectors look at), served as they are
//! by GET, LIST and watches; a write parses the current object once. Each resource has a
//! `tokio::sync::broadcast` channel; an event is published while the lock is held, and a
//! watcher subscribes and copies the retained history under the same lock, so it sees
//! every event after its starting resourceVersion exactly once. A watcher that falls behind the channel capacity is told
//! its resourceVersion expired (410) and relists, as with a real API server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::admission::{Admission, Objects};
use super::defaults;
use super::resources::{self, ResourceDef};
use super::selectors::Selectable;
use super::status::{ApiError, Cause};
pub use super::time::{now_rfc3339, now_rfc3339_micro, rfc3339};
use super::validate;

/// Store tuning.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Events retained per resource for watches that resume from a resourceVersion.
    pub history_limit: usize,
    /// Capacity of each resource's broadcast channel (events a slow watcher may lag).
    pub channel_capacity: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            history_limit: 1000,
            channel_capacity: 4096,
        }
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object deleted.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One stored object: its serialised JSON (served as is by GET, LIST and watches) and
/// what selectors look at. Keeping objects serialised rather than as `serde_json::Value`
/// trees costs a parse per write and saves most of the memory.
#[derive(Debug)]
pub struct Stored {
    /// The object's JSON.
    pub json: Bytes,
    /// Its resourceVersion.
    pub rv: u64,
    /// Name, namespace, labels and selectable fields.
    pub sel: Selectable,
}

impl Stored {
    fn new(kind: &str, obj: &Value) -> Arc<Self> {
        Arc::new(Stored {
            json: Bytes::from(serde_json::to_vec(obj).unwrap_or_default()),
            rv: rv_of(obj),
            sel: Selectable::of(kind, obj),
        })
    }

    /// The object as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// One change to one object.
#[derive(Debug)]
pub struct WatchEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before it, with the deletion's resourceVersion, for
    /// deletes).
    pub object: Arc<Stored>,
    /// The object before the change (modifications only): lets a filtered watch turn a
    /// change into ADDED or DELETED when the object starts or stops matching.
    pub prev: Option<Arc<Stored>>,
    /// The serialised `{"type":..,"object":..}\n` line, shared by all watchers.
    pub line: Bytes,
}

impl WatchEvent {
    fn new(rv: u64, kind: EventType, object: Arc<Stored>) -> Self {
        WatchEvent {
            rv,
            kind,
            line: raw_event_line(kind.as_str(), &object.json),
            object,
            prev: None,
        }
    }
}

/// One newline-terminated watch event line around an already serialised object.
pub fn raw_event_line(kind: &str, object_json: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object_json.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object_json);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// One newline-terminated watch event line.
pub fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: status changes are ignored for kinds with a status subresource.
    Main,
    /// The `/status` subresource: only status changes.
    Status,
}

/// Per-write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, persist nothing.
    pub dry_run: bool,
    /// Keep `status` on create (in-process seeding and controllers).
    pub keep_status: bool,
    /// [`Store::mutate`] creates an absent object instead of answering 404 (server-side
    /// apply).
    pub create_if_absent: bool,
}

/// Where a watch starts.
pub struct WatchStart {
    /// Events to send before live ones (history after the requested resourceVersion, or
    /// synthetic ADDED events for the current objects).
    pub backlog: Vec<Arc<WatchEvent>>,
    /// Live events.
    pub rx: broadcast::Receiver<Arc<WatchEvent>>,
    /// The resourceVersion the watch is at once the backlog is sent.
    pub start_rv: u64,
}

type ObjKey = (String, String);

struct KindState {
    objects: BTreeMap<ObjKey, Arc<Stored>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Events with a resourceVersion at or below this may have left the history.
    compacted_rv: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    watches_started: u64,
}

struct Inner {
    rv: u64,
    kinds: HashMap<(&'static str, &'static str), KindState>,
}

/// The object store.
pub struct Store {
    inner: Mutex<Inner>,
    opts: StoreOptions,
    /// Validating admission run on every create through the API (see [`super::admission`]).
    admission: Option<Admission>,
}

impl Objects for Inner {
    fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<Value> {
        self.kinds
            .get(&key(res))
            .and_then(|k| k.objects.get(&obj_key(res, ns, name)))
            .map(|o| o.value())
    }

    fn list(&self, res: &ResourceDef, ns: &str) -> Vec<Value> {
        self.kinds
            .get(&key(res))
            .map(|k| {
                k.objects
                    .iter()
                    .filter(|((ons, _), _)| !res.namespaced || ons == ns)
                    .map(|(_, o)| o.value())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn key(res: &ResourceDef) -> (&'static str, &'static str) {
    resources::find(res.group, res.version, res.plural)
        .map(|r| (r.group, r.plural))
        .unwrap_or(("", ""))
}

fn obj_key(res: &ResourceDef, ns: &str, name: &str) -> ObjKey {
    let ns = if res.namespaced { ns } else { "" };
    (ns.to_string(), name.to_string())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Everything but metadata and status: what a generation bump tracks.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o
}

impl Store {
    /// An empty store.
    pub fn new(opts: StoreOptions) -> Self {
        let kinds = resources::all()
            .iter()
            .map(|r| {
                let (tx, _) = broadcast::channel(opts.channel_capacity.max(1));
                (
                    (r.group, r.plural),
                    KindState {
                        objects: BTreeMap::new(),
                        history: VecDeque::new(),
                        compacted_rv: 0,
                        tx,
                        watches_started: 0,
                    },
                )
            })
            .collect();
        Store {
            inner: Mutex::new(Inner { rv: 0, kinds }),
            opts,
            admission: None,
        }
    }

    /// The store with a validating admission step on creates (not on in-process seeding,
    /// which keeps status and bypasses the API).
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<Value> {
        self.get_stored(res, ns, name).map(|o| o.value())
    }

    /// One object as stored (serialised).
    pub fn get_stored(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Stored>> {
        let inner = self.lock();
        inner
            .kinds
            .get(&key(res))
            .and_then(|k| k.objects.get(&obj_key(res, ns, name)))
            .cloned()
    }

    /// Objects of a resource, in one namespace or all (`None`), that pass `filter`, and
    /// the resourceVersion of the list.
    pub fn list(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        filter: impl Fn(&Selectable) -> bool,
    ) -> (Vec<Arc<Stored>>, u64) {
        let inner = self.lock();
        let items = inner
            .kinds
            .get(&key(res))
            .map(|k| {
                k.objects
                    .iter()
                    .filter(|((ons, _), _)| ns.is_none_or(|n| !res.namespaced || n == ons))
                    .filter(|(_, o)| filter(&o.sel))
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.rv)
    }

    /// One page of [`Store::list`]: at most `limit` objects after the key `after`
    /// (`(namespace, name)`, the order objects are kept in), the list's resourceVersion,
    /// and the key to continue after when more objects match.
    pub fn list_page(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        filter: impl Fn(&Selectable) -> bool,
        after: Option<(String, String)>,
        limit: usize,
    ) -> (Vec<Arc<Stored>>, u64, Option<(String, String)>) {
        use std::ops::Bound;
        let inner = self.lock();
        let Some(k) = inner.kinds.get(&key(res)) else {
            return (Vec::new(), inner.rv, None);
        };
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let mut matching = k
            .objects
            .range((start, Bound::Unbounded))
            .filter(|((ons, _), _)| ns.is_none_or(|n| !res.namespaced || n == ons))
            .filter(|(_, o)| filter(&o.sel));
        let items: Vec<(ObjKey, Arc<Stored>)> = matching
            .by_ref()
            .take(limit)
            .map(|(key, o)| (key.clone(), o.clone()))
            .collect();
        let next = if items.len() == limit && matching.next().is_some() {
            items.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        (items.into_iter().map(|(_, o)| o).collect(), inner.rv, next)
    }

    /// Create an object in `ns` (ignored for cluster-scoped resources).
    pub fn create(
        &self,
        res: &ResourceDef,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        Self::commit_create(&mut inner, &self.opts, self.admission, res, ns, obj, opts)
    }

    /// Read-modify-write of one object under the lock: `f` gets the current object (or
    /// `None`) and returns the desired object. When the object is absent and
    /// `opts.create_if_absent` holds, the result is created (server-side apply); otherwise an
    /// absent object is a 404. Returns the stored (or dry-run) object and whether it was
    /// created.
    pub fn mutate(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        let mut inner = self.lock();
        let current = inner
            .kinds
            .get(&key(res))
            .and_then(|k| k.objects.get(&obj_key(res, ns, name)))
            .cloned();
        match current {
            None if opts.create_if_absent && part == Part::Main => {
                let mut obj = f(None)?;
                let body_name = obj.pointer("/metadata/name").and_then(Value::as_str);
                if body_name.is_some_and(|n| n != name) {
                    return Err(name_mismatch(body_name.unwrap_or_default(), name));
                }
                meta_mut(&mut obj).insert("name".into(), json!(name));
                Self::commit_create(&mut inner, &self.opts, self.admission, res, ns, obj, opts)
                    .map(|o| (o, true))
            }
            None => Err(ApiError::not_found(res.plural, res.group, name)),
            Some(old) => {
                let new = f(Some(&old.value()))?;
                Self::commit_update(&mut inner, &self.opts, res, &old, new, part, opts)
                    .map(|o| (o, false))
            }
        }
    }

    /// A replace (PUT), as the generic registry's `Store.Update` does it (apiserver
    /// pkg/registry/generic/registry/store.go): a missing object is created when the kind's
    /// strategy allows create-on-update and is a 404 otherwise; an existing one needs the
    /// body's `metadata.resourceVersion` unless the strategy allows unconditional updates
    /// (422 "must be specified for an update"), and a stale one is a 409 Conflict. Returns the
    /// object and whether it was created.
    pub fn replace(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        part: Part,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        // The update handler checks the name before the registry runs (apiserver
        // pkg/endpoints/handlers/update.go, rest.go `checkName`).
        if let Some(body_name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
            if !body_name.is_empty() && body_name != name {
                return Err(name_mismatch(body_name, name));
            }
        }
        let opts = WriteOptions {
            create_if_absent: res.create_on_update && part == Part::Main,
            ..opts.clone()
        };
        self.mutate(res, ns, name, part, &opts, |cur| {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if cur.is_some() && !res.unconditional_update && rv.is_empty() {
                return Err(ApiError::invalid(
                    res.plural,
                    res.group,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )],
                ));
            }
            Ok(obj)
        })
    }

    /// Delete one object (namespaces take their namespaced objects with them).
    /// `preconditions` are an optional (uid, resourceVersion) pair from DeleteOptions.
    pub fn delete(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        preconditions: (Option<&str>, Option<&str>),
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = obj_key(res, ns, name);
        let Some(old) = inner
            .kinds
            .get(&key(res))
            .and_then(|s| s.objects.get(&k))
            .map(|o| o.value())
        else {
            return Err(ApiError::not_found(res.plural, res.group, name));
        };
        let (uid, rv) = preconditions;
        if let Some(uid) = uid {
            if old.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    "Precondition failed: UID in precondition does not match the object",
                ));
            }
        }
        if let Some(rv) = rv {
            if old
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(rv)
            {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    "Precondition failed: the object has been modified",
                ));
            }
        }
        if opts.dry_run {
            return Ok(old);
        }
        if res.kind == "Namespace" {
            for r in resources::all().iter().filter(|r| r.namespaced) {
                let names: Vec<ObjKey> = inner
                    .kinds
                    .get(&key(r))
                    .map(|s| {
                        s.objects
                            .keys()
                            .filter(|(n, _)| n == name)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                for nk in names {
                    Self::remove(&mut inner, &self.opts, r, &nk);
                }
            }
        }
        Ok(Self::remove(&mut inner, &self.opts, res, &k).unwrap_or(old))
    }

    /// Start a watch on a resource: from `since` (history replay; 410 if too old) or, for
    /// `None`/`Some(0)`, from now with synthetic ADDED events for the current objects.
    pub fn watch(&self, res: &ResourceDef, since: Option<u64>) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        let current = inner.rv;
        let Some(state) = inner.kinds.get_mut(&key(res)) else {
            return Err(ApiError::no_route(res.plural));
        };
        state.watches_started += 1;
        let rx = state.tx.subscribe();
        match since {
            None | Some(0) => {
                let backlog = state
                    .objects
                    .values()
                    .map(|o| Arc::new(WatchEvent::new(o.rv, EventType::Added, o.clone())))
                    .collect();
                Ok(WatchStart {
                    backlog,
                    rx,
                    start_rv: current,
                })
            }
            Some(n) => {
                if n < state.compacted_rv {
                    return Err(ApiError::expired(n, state.compacted_rv));
                }
                if n > current {
                    // From another server instance (the sim restarted): a real server
                    // would time out; 410 makes clients relist, which recovers.
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        format!(
                            "resource version {n} is newer than this server's {current}; relist"
                        ),
                    ));
                }
                let backlog = state.history.iter().filter(|e| e.rv > n).cloned().collect();
                Ok(WatchStart {
                    backlog,
                    rx,
                    start_rv: n.max(state.compacted_rv),
                })
            }
        }
    }

    /// How many watches on a resource have been started (for tests and diagnostics: a
    /// client is known to be watching once this grows).
    pub fn watches_started(&self, res: &ResourceDef) -> u64 {
        self.lock()
            .kinds
            .get(&key(res))
            .map_or(0, |k| k.watches_started)
    }

    fn publish(inner: &mut Inner, opts: &StoreOptions, res: &ResourceDef, ev: WatchEvent) {
        let Some(state) = inner.kinds.get_mut(&key(res)) else {
            return;
        };
        let ev = Arc::new(ev);
        state.history.push_back(ev.clone());
        while state.history.len() > opts.history_limit {
            if let Some(old) = state.history.pop_front() {
                state.compacted_rv = old.rv;
            }
        }
        // No receivers is fine.
        let _ = state.tx.send(ev);
    }

    fn remove(
        inner: &mut Inner,
        opts: &StoreOptions,
        res: &ResourceDef,
        k: &ObjKey,
    ) -> Option<Value> {
        let old = inner.kinds.get_mut(&key(res))?.objects.remove(k)?;
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = old.value();
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        Self::publish(
            inner,
            opts,
            res,
            WatchEvent::new(rv, EventType::Deleted, Stored::new(res.kind, &gone)),
        );
        Some(gone)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_create(
        inner: &mut Inner,
        sopts: &StoreOptions,
        admission: Option<Admission>,
        res: &ResourceDef,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let meta = meta_mut(&mut obj);
        let has_name = meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
                let name = format!("{prefix}{}", random_suffix());
                meta.insert("name".into(), json!(name));
            }
        }
        if res.namespaced {
            if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str) {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                    )));
                }
            }
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "selfLink",
        ] {
            meta.remove(f);
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if res.has_status && !opts.keep_status {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        normalize(res, &mut obj);
        defaults::decode(res, &mut obj)?;
        defaults::set_defaults(res, &mut obj);
        defaults::prepare_for_create(res, &mut obj, opts.keep_status);
        let causes = validate::validate(res, &obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res.kind, res.group, &name, causes));
        }
        if res.namespaced {
            let ns_key = (String::new(), ns.to_string());
            let exists = inner
                .kinds
                .get(&("", "namespaces"))
                .is_some_and(|s| s.objects.contains_key(&ns_key));
            if !exists {
                return Err(ApiError::not_found("namespaces", "", ns));
            }
        }
        // Validating webhooks run after validation and before the object is stored (and on
        // dry runs, as for KubeVirt's side-effect-free webhooks).
        if let (Some(admit), false) = (admission, opts.keep_status) {
            admit(&*inner, res, ns, &obj)?;
        }
        let k = obj_key(res, ns, &name);
        if inner
            .kinds
            .get(&key(res))
            .is_some_and(|s| s.objects.contains_key(&k))
        {
            return Err(ApiError::already_exists(res.plural, res.group, &name));
        }
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        // Custom resources get generation 1 (apiextensions-apiserver customresource
        // strategy.go PrepareForCreate); the strategies of the built-in kinds served here do
        // not set it (e.g. pkg/registry/coordination/lease/strategy.go).
        if !res.builtin {
            meta.insert("generation".into(), json!(1));
        }
        if opts.dry_run {
            return Ok(obj);
        }
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let stored = Stored::new(res.kind, &obj);
        if let Some(s) = inner.kinds.get_mut(&key(res)) {
            s.objects.insert(k, stored.clone());
        }
        Self::publish(
            inner,
            sopts,
            res,
            WatchEvent::new(rv, EventType::Added, stored),
        );
        Ok(obj)
    }

    fn commit_update(
        inner: &mut Inner,
        sopts: &StoreOptions,
        res: &ResourceDef,
        old_stored: &Arc<Stored>,
        body: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let old_value = old_stored.value();
        let old = &old_value;
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let name = old_meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(bn) = body.pointer("/metadata/name").and_then(Value::as_str) {
            if bn != name {
                return Err(name_mismatch(bn, &name));
            }
        }
        let old_rv = old_meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(rv) = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if !rv.is_empty() && rv != old_rv {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    &name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        // A uid in the body is a precondition: the object must still be that one (apiserver
        // `pkg/registry/generic/registry/store.go` Update makes the object's UID a
        // `storage.Preconditions`; `pkg/storage/interfaces.go` `Preconditions.Check`).
        let old_uid = old_meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(uid) = body.pointer("/metadata/uid").and_then(Value::as_str) {
            if !uid.is_empty() && uid != old_uid {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
                    ),
                ));
            }
        }
        let mut new = match part {
            Part::Status => {
                let mut n = old.clone();
                match body.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                // Server-side apply to /status records its field manager.
                if let Some(mf) = body.pointer("/metadata/managedFields") {
                    meta_mut(&mut n).insert("managedFields".into(), mf.clone());
                }
                n
            }
            Part::Main => {
                let mut n = body;
                if res.has_status {
                    if let Some(m) = n.as_object_mut() {
                        match old.get("status") {
                            Some(s) => {
                                m.insert("status".into(), s.clone());
                            }
                            None => {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        new["apiVersion"] = json!(res.api_version());
        new["kind"] = json!(res.kind);
        {
            let meta = meta_mut(&mut new);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            if !meta.contains_key("managedFields") {
                if let Some(mf) = old_meta.get("managedFields") {
                    meta.insert("managedFields".into(), mf.clone());
                }
            }
            meta.insert("resourceVersion".into(), json!(old_rv));
        }
        defaults::decode(res, &mut new)?;
        defaults::set_defaults(res, &mut new);
        if part == Part::Main {
            normalize(res, &mut new);
            let causes = validate::validate(res, &new);
            if !causes.is_empty() {
                return Err(ApiError::invalid(res.kind, res.group, &name, causes));
            }
        }
        if without_rv(&new) == without_rv(old) {
            return Ok(old_value);
        }
        if !res.builtin && spec_part(&new) != spec_part(old) {
            let g = old_meta
                .get("generation")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if opts.dry_run {
            return Ok(new);
        }
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let ns = old_meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let stored = Stored::new(res.kind, &new);
        if let Some(s) = inner.kinds.get_mut(&key(res)) {
            s.objects.insert(obj_key(res, ns, &name), stored.clone());
        }
        let mut ev = WatchEvent::new(rv, EventType::Modified, stored);
        ev.prev = Some(old_stored.clone());
        Self::publish(inner, sopts, res, ev);
        Ok(new)
    }
}

/// What the API server does to every write of a kind: a Secret's `stringData` is
/// base64-encoded into `data`.
fn normalize(res: &ResourceDef, obj: &mut Value) {
    if res.kind != "Secret" {
        return;
    }
    let Some(m) = obj.as_object_mut() else { return };
    let Some(Value::Object(string_data)) = m.remove("stringData") else {
        return;
    };
    if !m.get("data").is_some_and(Value::is_object) {
        m.insert("data".into(), json!({}));
    }
    if let Some(Value::Object(data)) = m.get_mut("data") {
        for (k, v) in string_data {
            if let Some(s) = v.as_str() {
                data.insert(k, json!(base64(s.as_bytes())));
            }
        }
    }
}

/// Standard base64 with padding.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn name_mismatch(body: &str, url: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the name of the object ({body}) does not match the name on the URL ({url})"
    ))
}

/// An object's resourceVersion as a number (0 when absent or malformed).
pub fn rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
