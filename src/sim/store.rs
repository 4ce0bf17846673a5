//! The in-memory object store: objects per resource, a global resourceVersion, and a
//! bounded event history per resource that watches read from.
//!
//! Concurrency choice: one `std::sync::Mutex` around the whole store, held only for short
//! synchronous sections (a lookup, or validate + commit + publish of one write) and never
//! across an `.await`. Writes are serialised, which gives a total order of
//! resourceVersions for free; reads are cheap because objects are kept serialised
//! (`Arc<Stored>`: JSON bytes plus the few fields selectors look at), served as they are
//! by GET, LIST and watches; a write parses the current object once.
//!
//! Each resource's objects sit in an `Arc`'d map that a write changes copy-on-write: LIST
//! and a new watch take the map (one reference count) under the lock and walk it after
//! releasing it, so neither copies objects nor holds writers up while it serves them; a
//! write that finds the map shared clones its pointers once.
//!
//! Watches pull from the resource's history ([`Store::events_after`]) when a write wakes
//! them, so a watcher holds no queue of its own and a slow one costs nothing but its place
//! in the history. The history is bounded by events and by bytes
//! ([`StoreOptions::history_limit`], [`StoreLimits::history_bytes`]); older events are
//! compacted away, and a watch that needs one of them is told its resourceVersion expired
//! (410 Gone), as etcd's compaction and the API server's watch cache do, and relists.

use base64::Engine as _;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::watch as signal;

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
    /// Events retained per resource for watches that resume from a resourceVersion (the
    /// bytes they may take are bounded apart, by [`StoreLimits::history_bytes`]).
    pub history_limit: usize,
    /// How many events a watcher may fall behind the newest before it is told its
    /// resourceVersion expired (410) and must relist.
    pub channel_capacity: usize,
}

/// The largest object the store keeps, in bytes of its JSON: etcd's default request limit
/// (`--max-request-bytes`, 1.5 MiB; etcd server/embed/config.go `DefaultMaxRequestBytes`).
/// A larger create or update fails as the API server fails it (see
/// [`ApiError::etcd_request_too_large`]).
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024 / 2;

/// Bytes of watch history kept per resource (objects and their previous versions, as
/// accounted by [`WatchEvent::weight`]). The API server's watch cache keeps a window of
/// recent events per resource (staging/src/k8s.io/apiserver/pkg/storage/cacher/
/// watch_cache.go, a ring of events) over etcd, which compacts older revisions
/// (staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go); a watch from before the
/// window is 410 Gone ("too old resource version"). So is one here.
pub const HISTORY_BYTES: usize = 64 * 1024 * 1024;

/// The most bytes all stored objects may take together (as [`Stored::weight`] accounts
/// them): etcd's default backend quota (`--quota-backend-bytes`, 2 GiB; etcd
/// server/storage/quota.go `DefaultQuotaBytes`). A write that would grow the store past
/// it fails with etcd's "database space exceeded", passed through by the API server as a
/// 500 like [`ApiError::etcd_request_too_large`]; deletes and writes that shrink an
/// object still go through.
pub const QUOTA_BYTES: usize = 2 << 30;

/// Size limits of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// See [`MAX_OBJECT_BYTES`].
    pub object_bytes: usize,
    /// See [`HISTORY_BYTES`].
    pub history_bytes: usize,
    /// See [`QUOTA_BYTES`].
    pub quota_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            object_bytes: MAX_OBJECT_BYTES,
            history_bytes: HISTORY_BYTES,
            quota_bytes: QUOTA_BYTES,
        }
    }
}

/// What a resource's objects and watch history take, as the store accounts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Objects stored.
    pub objects: usize,
    /// Their accounted bytes.
    pub object_bytes: usize,
    /// Events in the watch history.
    pub history_events: usize,
    /// Their accounted bytes (never above [`StoreLimits::history_bytes`] but for the newest
    /// event, which is always kept).
    pub history_bytes: usize,
    /// Events at or below this resourceVersion have been compacted away.
    pub compacted_rv: u64,
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

/// Bytes accounted to every stored object and event beside its JSON (the `Arc`s, the
/// selectable fields' allocations, map and queue slots).
const OVERHEAD_BYTES: usize = 256;

impl Stored {
    fn new(kind: &str, obj: &Value) -> Arc<Self> {
        Self::from_json(kind, obj, serde_json::to_vec(obj).unwrap_or_default())
    }

    fn from_json(kind: &str, obj: &Value, json: Vec<u8>) -> Arc<Self> {
        Arc::new(Stored {
            json: Bytes::from(json),
            rv: rv_of(obj),
            sel: Selectable::of(kind, obj),
        })
    }

    /// The bytes this object is accounted for: its JSON, what selectors keep of it and a
    /// fixed overhead.
    pub fn weight(&self) -> usize {
        let sel = &self.sel;
        self.json.len()
            + sel.name.len()
            + sel.namespace.len()
            + sel
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + sel.fields.iter().map(|(_, v)| v.len()).sum::<usize>()
            + OVERHEAD_BYTES
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
}

impl WatchEvent {
    fn new(rv: u64, kind: EventType, object: Arc<Stored>) -> Self {
        WatchEvent {
            rv,
            kind,
            object,
            prev: None,
        }
    }

    /// The bytes this event keeps alive, at most: the object and its previous version
    /// (which another event may share: the accounting errs high).
    pub fn weight(&self) -> usize {
        self.object.weight() + self.prev.as_ref().map_or(0, |p| p.weight()) + OVERHEAD_BYTES
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

/// The key objects are kept under: (namespace, name); the namespace is empty for
/// cluster-scoped resources.
pub type ObjKey = (String, String);

/// A resource's objects at one resourceVersion: an immutable map shared with the store
/// until the next write.
pub type Snapshot = Arc<BTreeMap<ObjKey, Arc<Stored>>>;

/// Where a watch starts.
pub struct WatchStart {
    /// The objects to send as ADDED first (a watch from "now"), or `None` (a watch that
    /// resumes from a resourceVersion).
    pub snapshot: Option<Snapshot>,
    /// The resourceVersion the watch is at once the snapshot is sent: it then reads the
    /// events after it from the history ([`Store::events_after`]).
    pub start_rv: u64,
    /// Changes whenever an event of the resource is published.
    pub changes: signal::Receiver<u64>,
}

struct KindState {
    objects: Snapshot,
    /// Sum of the objects' [`Stored::weight`].
    object_bytes: usize,
    history: VecDeque<Arc<WatchEvent>>,
    /// Sum of the history's [`WatchEvent::weight`].
    history_bytes: usize,
    /// Events with a resourceVersion at or below this may have left the history.
    compacted_rv: u64,
    /// The resourceVersion of the latest event; watchers wait on it.
    notify: signal::Sender<u64>,
    watches_started: u64,
}

impl KindState {
    fn put(&mut self, k: ObjKey, stored: Arc<Stored>) {
        self.object_bytes += stored.weight();
        if let Some(old) = Arc::make_mut(&mut self.objects).insert(k, stored) {
            self.object_bytes = self.object_bytes.saturating_sub(old.weight());
        }
    }

    fn take(&mut self, k: &ObjKey) -> Option<Arc<Stored>> {
        if !self.objects.contains_key(k) {
            return None;
        }
        let old = Arc::make_mut(&mut self.objects).remove(k)?;
        self.object_bytes = self.object_bytes.saturating_sub(old.weight());
        Some(old)
    }
}

struct Inner {
    rv: u64,
    kinds: HashMap<(&'static str, &'static str), KindState>,
}

/// The object store.
pub struct Store {
    inner: Mutex<Inner>,
    opts: StoreOptions,
    limits: StoreLimits,
    /// Validating admission run on every create and update through the API (see
    /// [`super::admission`]).
    admission: Option<Admission>,
    /// The optional CRDs installed (Forklift's, and which release): what is served and
    /// what a custom resource's structural schema prunes.
    crds: super::resources::Crds,
}

/// What a write needs of the store besides its state.
#[derive(Clone, Copy)]
struct Tuning<'a> {
    opts: &'a StoreOptions,
    limits: StoreLimits,
    crds: &'a super::resources::Crds,
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
                (
                    (r.group, r.plural),
                    KindState {
                        objects: Snapshot::default(),
                        object_bytes: 0,
                        history: VecDeque::new(),
                        history_bytes: 0,
                        compacted_rv: 0,
                        notify: signal::channel(0).0,
                        watches_started: 0,
                    },
                )
            })
            .collect();
        Store {
            inner: Mutex::new(Inner { rv: 0, kinds }),
            opts,
            limits: StoreLimits::default(),
            admission: None,
            crds: super::resources::Crds::default(),
        }
    }

    /// The store with other size limits.
    pub fn with_limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The store's size limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn tuning(&self) -> Tuning<'_> {
        Tuning {
            opts: &self.opts,
            limits: self.limits,
            crds: &self.crds,
        }
    }

    /// The store with these optional CRDs installed (see [`super::resources::Crds`]).
    pub fn with_crds(mut self, crds: super::resources::Crds) -> Self {
        self.crds = crds;
        self
    }

    /// The optional CRDs installed.
    pub fn crds(&self) -> &super::resources::Crds {
        &self.crds
    }

    /// What all stored objects take, as [`Stored::weight`] accounts them (the figure
    /// [`StoreLimits::quota_bytes`] bounds).
    pub fn object_bytes(&self) -> usize {
        self.lock().kinds.values().map(|k| k.object_bytes).sum()
    }

    /// What a resource's objects and watch history take.
    pub fn usage(&self, res: &ResourceDef) -> Usage {
        let inner = self.lock();
        inner
            .kinds
            .get(&key(res))
            .map_or_else(Usage::default, |k| Usage {
                objects: k.objects.len(),
                object_bytes: k.object_bytes,
                history_events: k.history.len(),
                history_bytes: k.history_bytes,
                compacted_rv: k.compacted_rv,
            })
    }

    /// The objects of a resource as they are now, and the resourceVersion (a shared
    /// snapshot: taking it copies nothing).
    pub fn snapshot(&self, res: &ResourceDef) -> (Snapshot, u64) {
        let inner = self.lock();
        let objects = inner
            .kinds
            .get(&key(res))
            .map(|k| k.objects.clone())
            .unwrap_or_default();
        (objects, inner.rv)
    }

    /// The store with a validating admission step on creates and updates of the main
    /// resource (not on in-process seeding, which keeps status and bypasses the API, nor on
    /// `/status` writes).
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
        let (objects, rv) = self.snapshot(res);
        let items = in_namespace(&objects, res, ns, None)
            .filter(|(_, o)| filter(&o.sel))
            .map(|(_, o)| o.clone())
            .collect();
        (items, rv)
    }

    /// One page of [`Store::list`]: at most `limit` objects from the key `start`
    /// (`(namespace, name)`, the order objects are kept in), the list's resourceVersion,
    /// and the key to continue after when more objects match.
    pub fn list_page(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        filter: impl Fn(&Selectable) -> bool,
        start: std::ops::Bound<ObjKey>,
        limit: usize,
    ) -> (Vec<Arc<Stored>>, u64, Option<ObjKey>) {
        let (objects, rv) = self.snapshot(res);
        let mut matching =
            in_namespace(&objects, res, ns, Some(start)).filter(|(_, o)| filter(&o.sel));
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
        (items.into_iter().map(|(_, o)| o).collect(), rv, next)
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
        Self::commit_create(
            &mut inner,
            self.tuning(),
            self.admission,
            res,
            ns,
            obj,
            opts,
        )
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
                Self::commit_create(
                    &mut inner,
                    self.tuning(),
                    self.admission,
                    res,
                    ns,
                    obj,
                    opts,
                )
                .map(|o| (o, true))
            }
            None => Err(ApiError::not_found(res.plural, res.group, name)),
            Some(old) => {
                let new = f(Some(&old.value()))?;
                Self::commit_update(
                    &mut inner,
                    self.tuning(),
                    self.admission,
                    res,
                    &old,
                    new,
                    part,
                    opts,
                )
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

    /// Delete one object (namespaces take their namespaced objects with them), as a DELETE
    /// without `gracePeriodSeconds` does (see [`Store::delete_with`]).
    /// `preconditions` are an optional (uid, resourceVersion) pair from DeleteOptions.
    pub fn delete(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        preconditions: (Option<&str>, Option<&str>),
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.delete_with(res, ns, name, preconditions, None, opts)
    }

    /// [`Store::delete`] with DeleteOptions' `gracePeriodSeconds` (`grace`). A Pod may be
    /// deleted gracefully (see [`pod_grace`]): it is then only marked (`deletionTimestamp`,
    /// MODIFIED) and stays until a later deletion with grace 0 (the kubelet's, once its
    /// containers stopped).
    pub fn delete_with(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        preconditions: (Option<&str>, Option<&str>),
        grace: Option<i64>,
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
        if res.kind == "Pod" {
            match pod_grace(&old, grace) {
                Grace::Now => {}
                Grace::Pending => return Ok(old),
                Grace::Mark { until, seconds } => {
                    let mut marked = old.clone();
                    let meta = meta_mut(&mut marked);
                    meta.insert("deletionTimestamp".into(), json!(until));
                    meta.insert("deletionGracePeriodSeconds".into(), json!(seconds));
                    if opts.dry_run {
                        return Ok(marked);
                    }
                    let rv = inner.rv + 1;
                    meta_mut(&mut marked).insert("resourceVersion".into(), json!(rv.to_string()));
                    let Some(old_stored) = inner
                        .kinds
                        .get(&key(res))
                        .and_then(|s| s.objects.get(&k))
                        .cloned()
                    else {
                        return Err(ApiError::not_found(res.plural, res.group, name));
                    };
                    let stored = sized(res, &marked, self.tuning().limits)?;
                    within_quota(
                        &inner,
                        self.tuning().limits,
                        stored.weight(),
                        old_stored.weight(),
                    )?;
                    inner.rv = rv;
                    if let Some(s) = inner.kinds.get_mut(&key(res)) {
                        s.put(k, stored.clone());
                    }
                    let mut ev = WatchEvent::new(rv, EventType::Modified, stored);
                    ev.prev = Some(old_stored);
                    Self::publish(&mut inner, self.tuning(), res, ev);
                    return Ok(marked);
                }
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
                    Self::remove(&mut inner, self.tuning(), r, &nk);
                }
            }
        }
        Ok(Self::remove(&mut inner, self.tuning(), res, &k).unwrap_or(old))
    }

    /// Start a watch on a resource: from `since` (the history after it; 410 if it was
    /// compacted away) or, for `None`/`Some(0)`, from now, the current objects first (a
    /// shared snapshot, taken without copying them).
    pub fn watch(&self, res: &ResourceDef, since: Option<u64>) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        let current = inner.rv;
        let Some(state) = inner.kinds.get_mut(&key(res)) else {
            return Err(ApiError::no_route(res.plural));
        };
        state.watches_started += 1;
        let changes = state.notify.subscribe();
        match since {
            None | Some(0) => Ok(WatchStart {
                snapshot: Some(state.objects.clone()),
                start_rv: current,
                changes,
            }),
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
                Ok(WatchStart {
                    snapshot: None,
                    start_rv: n,
                    changes,
                })
            }
        }
    }

    /// The events of a resource after resourceVersion `rv`, oldest first: as many as fit in
    /// `max_bytes` (by [`WatchEvent::weight`]), and at least one when there is one. A
    /// watcher at `rv` whose next event was compacted away, or that fell more than
    /// [`StoreOptions::channel_capacity`] events behind, gets 410 Expired.
    pub fn events_after(
        &self,
        res: &ResourceDef,
        rv: u64,
        max_bytes: usize,
    ) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        let inner = self.lock();
        let Some(state) = inner.kinds.get(&key(res)) else {
            return Ok(Vec::new());
        };
        if rv < state.compacted_rv {
            return Err(ApiError::expired(rv, state.compacted_rv));
        }
        let from = state.history.partition_point(|e| e.rv <= rv);
        let behind = state.history.len() - from;
        if behind > self.opts.channel_capacity.max(1) {
            let oldest = state.history.get(from).map_or(rv, |e| e.rv);
            return Err(ApiError::expired(rv, oldest));
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for ev in state.history.range(from..) {
            if !out.is_empty() && bytes + ev.weight() > max_bytes {
                break;
            }
            bytes += ev.weight();
            out.push(ev.clone());
        }
        Ok(out)
    }

    /// How many watches on a resource have been started (for tests and diagnostics: a
    /// client is known to be watching once this grows).
    pub fn watches_started(&self, res: &ResourceDef) -> u64 {
        self.lock()
            .kinds
            .get(&key(res))
            .map_or(0, |k| k.watches_started)
    }

    /// Append an event to the resource's history, compact the history down to its event
    /// and byte bounds (the newest event always stays), and wake the watchers.
    fn publish(inner: &mut Inner, t: Tuning<'_>, res: &ResourceDef, ev: WatchEvent) {
        let Some(state) = inner.kinds.get_mut(&key(res)) else {
            return;
        };
        let rv = ev.rv;
        let ev = Arc::new(ev);
        state.history_bytes += ev.weight();
        state.history.push_back(ev);
        while state.history.len() > 1
            && (state.history.len() > t.opts.history_limit.max(1)
                || state.history_bytes > t.limits.history_bytes)
        {
            if let Some(old) = state.history.pop_front() {
                state.compacted_rv = old.rv;
                state.history_bytes = state.history_bytes.saturating_sub(old.weight());
            }
        }
        // No watchers is fine.
        state.notify.send_replace(rv);
    }

    fn remove(inner: &mut Inner, t: Tuning<'_>, res: &ResourceDef, k: &ObjKey) -> Option<Value> {
        let old = inner.kinds.get_mut(&key(res))?.take(k)?;
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = old.value();
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        Self::publish(
            inner,
            t,
            res,
            WatchEvent::new(rv, EventType::Deleted, Stored::new(res.kind, &gone)),
        );
        Some(gone)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_create(
        inner: &mut Inner,
        t: Tuning<'_>,
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
                    return Err(namespace_mismatch());
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
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            // apiserver pkg/registry/rest/create.go `BeforeCreate` clears the deletion
            // mark (`SetDeletionTimestamp(nil)`, `SetDeletionGracePeriodSeconds(nil)`).
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
        if let Some(f) = &t.crds.forklift {
            super::forklift_crd::prune(res, f, &mut obj);
        }
        super::schema::prune_multi_network_policy(res, &mut obj);
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
        // The built-in Pod Security admission plugin, before the webhooks (dry runs too).
        if !opts.keep_status {
            super::pod_security::admit(&*inner, res, ns, &obj)?;
        }
        // Validating webhooks run after validation and before the object is stored (and on
        // dry runs, as for KubeVirt's side-effect-free webhooks).
        if let (Some(admit), false) = (admission, opts.keep_status) {
            admit(&*inner, res, ns, &obj, None)?;
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
        let rv = inner.rv + 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let stored = sized(res, &obj, t.limits)?;
        within_quota(inner, t.limits, stored.weight(), 0)?;
        inner.rv = rv;
        if let Some(s) = inner.kinds.get_mut(&key(res)) {
            s.put(k, stored.clone());
        }
        Self::publish(inner, t, res, WatchEvent::new(rv, EventType::Added, stored));
        Ok(obj)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        inner: &mut Inner,
        t: Tuning<'_>,
        admission: Option<Admission>,
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
        if res.namespaced {
            let old_ns = old_meta.get("namespace").and_then(Value::as_str);
            let body_ns = body.pointer("/metadata/namespace").and_then(Value::as_str);
            if body_ns.is_some_and(|b| !b.is_empty() && Some(b) != old_ns) {
                return Err(namespace_mismatch());
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
                "deletionGracePeriodSeconds",
            ] {
                // apiserver pkg/registry/rest/update.go `BeforeUpdate`: an update can never
                // remove or change the deletion timestamp or grace period.
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
        if let Some(f) = &t.crds.forklift {
            super::forklift_crd::prune(res, f, &mut new);
        }
        super::schema::prune_multi_network_policy(res, &mut new);
        defaults::decode(res, &mut new)?;
        defaults::set_defaults(res, &mut new);
        if part == Part::Main {
            normalize(res, &mut new);
            let causes = validate::validate(res, &new);
            if !causes.is_empty() {
                return Err(ApiError::invalid(res.kind, res.group, &name, causes));
            }
            // Validating webhooks see updates of the main resource (a `/status` write is
            // another resource to a webhook rule), dry runs included.
            if let Some(admit) = admission {
                let ns = old_meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                admit(&*inner, res, ns, &new, Some(old))?;
            }
        }
        // Nothing changed, nothing written: the resourceVersion stays (the etcd3 store's
        // `GuaranteedUpdate` returns the current object when the encoded update equals it;
        // staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go).
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
        let rv = inner.rv + 1;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let ns = old_meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let stored = sized(res, &new, t.limits)?;
        within_quota(inner, t.limits, stored.weight(), old_stored.weight())?;
        inner.rv = rv;
        if let Some(s) = inner.kinds.get_mut(&key(res)) {
            s.put(obj_key(res, ns, &name), stored.clone());
        }
        let mut ev = WatchEvent::new(rv, EventType::Modified, stored);
        ev.prev = Some(old_stored.clone());
        Self::publish(inner, t, res, ev);
        Ok(new)
    }
}

/// What a DELETE does to a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grace {
    /// Remove it now (DELETED).
    Now,
    /// Already being deleted with a grace period no longer than the one asked: nothing
    /// changes, the object is the answer.
    Pending,
    /// Mark it: `deletionTimestamp` `until`, `deletionGracePeriodSeconds` `seconds`.
    Mark { until: String, seconds: i64 },
}

/// Graceful deletion of a Pod as the API server decides it:
/// - kubernetes `staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go` `BeforeDelete`:
///   a negative grace period counts as 1 s; an object already marked may only have its
///   grace period shortened (a longer or equal one, or none, leaves it pending; grace 0,
///   or a mark without a grace period, deletes it now); otherwise the strategy's
///   `CheckGracefulDelete` gives the period, and the mark is `now + period`;
/// - kubernetes `pkg/registry/core/pod/strategy.go` `podStrategy.CheckGracefulDelete`: the
///   request's `gracePeriodSeconds`, else `spec.terminationGracePeriodSeconds` (defaulted
///   to 30), and 0 for a pod not bound to a node or already `Succeeded`/`Failed`;
/// - `staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go` `Delete` and
///   `updateForGracefulDeletionAndFinalizers`: a period > 0 only updates the object (the
///   answer is the marked object, 200); a period of 0 removes it. (The real store first
///   writes the mark with grace 0 and then removes the object, so a watch sees a MODIFIED
///   just before the DELETED; the sim removes it in one step.)
fn pod_grace(pod: &Value, requested: Option<i64>) -> Grace {
    let requested = requested.map(|g| if g < 0 { 1 } else { g });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let at = |secs: i64| rfc3339(secs.max(0) as u64);
    if let Some(marked) = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
    {
        let current = pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        let Some(current) = current.filter(|c| *c != 0) else {
            return Grace::Now;
        };
        return match requested {
            Some(0) => Grace::Now,
            Some(p) if p < current => {
                let since = super::table::parse_rfc3339(marked).map_or(now, |t| t as i64);
                Grace::Mark {
                    until: at(since - current + p),
                    seconds: p,
                }
            }
            _ => Grace::Pending,
        };
    }
    let mut period = requested.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    });
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || terminal {
        period = 0;
    }
    if period < 0 {
        period = 1;
    }
    if period == 0 {
        return Grace::Now;
    }
    Grace::Mark {
        until: at(now + period),
        seconds: period,
    }
}

/// The object serialised for storage, unless it is over the object size limit: etcd
/// refuses a request over `--max-request-bytes` (see [`MAX_OBJECT_BYTES`]), and the API
/// server answers as [`ApiError::etcd_request_too_large`] says. Dry runs never reach etcd
/// and are not checked.
fn sized(res: &ResourceDef, obj: &Value, limits: StoreLimits) -> Result<Arc<Stored>, ApiError> {
    let json = serde_json::to_vec(obj).unwrap_or_default();
    if json.len() > limits.object_bytes {
        return Err(ApiError::etcd_request_too_large());
    }
    Ok(Stored::from_json(res.kind, obj, json))
}

/// Whether the store may take an object of `adds` bytes in place of one of `frees`: a write
/// that grows the store past [`StoreLimits::quota_bytes`] is refused as etcd refuses it
/// (`ErrGRPCNoSpace`, which the API server passes through as a 500).
fn within_quota(
    inner: &Inner,
    limits: StoreLimits,
    adds: usize,
    frees: usize,
) -> Result<(), ApiError> {
    if adds <= frees {
        return Ok(());
    }
    let total: usize = inner.kinds.values().map(|k| k.object_bytes).sum();
    if total - frees.min(total) + adds > limits.quota_bytes {
        return Err(ApiError::new(
            500,
            "",
            "etcdserver: mvcc: database space exceeded",
        ));
    }
    Ok(())
}

/// The entries of a snapshot in one namespace (or all, `None`; cluster-scoped resources
/// ignore it), from `start`, in key order: a namespace's objects are one key range.
fn in_namespace<'a>(
    objects: &'a BTreeMap<ObjKey, Arc<Stored>>,
    res: &ResourceDef,
    ns: Option<&'a str>,
    start: Option<std::ops::Bound<ObjKey>>,
) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Stored>)> + 'a {
    use std::ops::Bound;
    let ns = ns.filter(|_| res.namespaced);
    let floor = ns.map(|n| (n.to_string(), String::new()));
    let start = match (start, floor) {
        (Some(Bound::Included(k)), Some(f)) => Bound::Included(k.max(f)),
        (Some(Bound::Excluded(k)), Some(f)) if k < f => Bound::Included(f),
        (Some(b @ (Bound::Included(_) | Bound::Excluded(_))), _) => b,
        (_, Some(f)) => Bound::Included(f),
        (_, None) => Bound::Unbounded,
    };
    objects
        .range((start, Bound::Unbounded))
        .take_while(move |((ons, _), _)| ns.is_none_or(|n| n == ons))
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

/// Standard base64 with padding (a Secret's `data` values).
pub fn base64(input: &[u8]) -> String {
    super::go_base64::STD.encode(input)
}

/// An object whose namespace is not the request's: apiserver
/// staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go
/// `EnsureObjectNamespaceMatchesRequestNamespace` (create, update and patch handlers).
fn namespace_mismatch() -> ApiError {
    ApiError::bad_request(
        "the namespace of the provided object does not match the namespace sent on the request",
    )
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

    #[test]
    fn pod_deletion_grace_as_check_graceful_delete_decides_it() {
        let pod = |node: &str, phase: &str| {
            json!({ "metadata": { "name": "p" },
                    "spec": { "nodeName": node, "terminationGracePeriodSeconds": 30 },
                    "status": { "phase": phase } })
        };
        let mark = |g: &Grace| match g {
            Grace::Mark { seconds, .. } => Some(*seconds),
            _ => None,
        };
        assert_eq!(mark(&pod_grace(&pod("n1", "Running"), None)), Some(30));
        assert_eq!(mark(&pod_grace(&pod("n1", "Running"), Some(5))), Some(5));
        assert_eq!(mark(&pod_grace(&pod("n1", "Running"), Some(-3))), Some(1));
        assert_eq!(pod_grace(&pod("n1", "Running"), Some(0)), Grace::Now);
        assert_eq!(pod_grace(&pod("", "Pending"), Some(5)), Grace::Now);
        assert_eq!(pod_grace(&pod("n1", "Succeeded"), Some(5)), Grace::Now);
        assert_eq!(pod_grace(&pod("n1", "Failed"), None), Grace::Now);
        // Marked already: only a shorter period changes it; 0 removes it.
        let mut marked = pod("n1", "Running");
        marked["metadata"]["deletionTimestamp"] = json!("2026-12-05T22:00:05Z");
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(5);
        assert_eq!(pod_grace(&marked, None), Grace::Pending);
        assert_eq!(pod_grace(&marked, Some(5)), Grace::Pending);
        assert_eq!(pod_grace(&marked, Some(0)), Grace::Now);
        assert_eq!(
            pod_grace(&marked, Some(2)),
            Grace::Mark {
                until: "2026-12-05T22:00:02Z".into(),
                seconds: 2
            }
        );
        // Even a pod that ended meanwhile stays pending (no CheckGracefulDelete again).
        marked["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_grace(&marked, None), Grace::Pending);
    }
}
