//! Embedded Kubernetes-API-compatible rehearsal cluster.
//!
//! [`start`] serves the API on a loopback port in-process (tests, rehearsals);
//! [`serve_forever`] backs `wavelift sim serve`. The engine and kubectl talk to it over
//! real HTTP, exactly as to a real cluster. Simulated controllers (CDI, KubeVirt,
//! vSphere, network) attach as kube-rs clients via [`SimHandle::client`], or in-process
//! via [`SimHandle::store`]; scenarios add objects through [`SimOptions::extra_objects`].
//!
//! Module map: [`store`] (objects, resourceVersions, watch history), [`resources`] (the
//! served kinds), [`discovery`], [`openapi`] + [`schema`] (documents and known fields),
//! [`selectors`], [`patch`] (merge/JSON/apply), [`defaults`] (defaulting, PrepareForCreate,
//! time wire forms), [`validate`], [`access`] (authorization, SelfSubjectAccessReview),
//! [`watch`] (streams), [`status`] (errors), [`server`] (routing and verbs), [`lifecycle`]
//! (virt-api's VM start/stop/restart/migrate subresources), [`admission`] (KubeVirt's
//! validating webhooks).

pub mod access;
pub(crate) mod admission;
pub mod controllers;
pub(crate) mod defaults;
pub(crate) mod discovery;
mod fault;
pub(crate) mod forklift_crd;
pub(crate) mod go_base64;
pub(crate) mod kind_schema;
pub(crate) mod lifecycle;
pub(crate) mod openapi;
pub mod patch;
pub mod pod_security;
pub mod resources;
pub(crate) mod schema;
pub(crate) mod selectors;
pub(crate) mod server;
pub(crate) mod status;
pub mod store;
pub(crate) mod table;
pub mod time;
pub(crate) mod validate;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

pub use store::{Store, StoreOptions};

/// How to run the sim.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Loopback port; 0 picks an ephemeral one.
    pub port: u16,
    /// Store tuning (watch history window, broadcast capacity).
    pub store: StoreOptions,
    /// Request bodies above this size answer 413 (the API server's `MaxRequestBodyBytes`,
    /// 3 MiB by default: staging/src/k8s.io/apiserver/pkg/server/config.go). It also
    /// bounds what a YAML body may expand to through aliases and what a JSON patch's
    /// `copy` operations may copy.
    pub max_body_bytes: usize,
    /// Interval of periodic BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// End every watch after this long, as real API servers do (clients re-watch from
    /// their last resourceVersion); `None` keeps watches open until the client leaves.
    pub watch_max_duration: Option<Duration>,
    /// Number of simulated nodes seeded at start (`sim-node-1`, ...).
    pub nodes: usize,
    /// Further objects created at start, after the defaults (each names its resource by
    /// `apiVersion` + `kind`; status is kept). The place for scenario seeding.
    pub extra_objects: Vec<Value>,
    /// Injected API faults (error rate, latency), deterministic for their seed.
    pub faults: ApiFaults,
    /// Routes served beside the Kubernetes API on the same port (the simulated world's
    /// vSphere REST API and network probes), set once the controllers run.
    pub extension: Arc<std::sync::OnceLock<server::Extension>>,
    /// Run the validating webhooks an installed KubeVirt and CDI register (see
    /// [`admission`]).
    /// Off for a bare API server (CRDs, no webhook configuration); every rehearsal turns
    /// it on.
    pub kubevirt_webhooks: bool,
    /// What the (anonymous) user may not do: denied requests answer 403 and
    /// SelfSubjectAccessReviews for them `allowed: false`. Empty: everything is allowed.
    pub access: access::Authorizer,
    /// Extended resources every node advertises beside CPU and memory (capacity and
    /// allocatable), e.g. bridge-marker's `bridge.network.kubevirt.io/br-trunk: 1k`.
    pub node_resources: BTreeMap<String, String>,
    /// Nodes that advertise none of `node_resources` (a scenario's `bridgeless_nodes`).
    pub bare_nodes: Vec<String>,
    /// Object and watch-history sizes (see [`store::StoreLimits`]).
    pub limits: store::StoreLimits,
    /// Connections (see [`ConnLimits`]).
    pub connections: ConnLimits,
    /// Optional CRDs the cluster has (Forklift's, and which release); default: Forklift
    /// installed, newest release (see [`resources::Crds`]).
    pub crds: resources::Crds,
}

/// The rehearsal workstation's address: where the checks wavelift runs from the
/// workstation (`checks_from = "workstation"`) come from in a rehearsal, and so the source
/// of every `/sim/v1/probe` that names no `from=`. It is subject to the cluster's
/// NetworkPolicies and MultiNetworkPolicies like any other address (an `ipBlock` must admit
/// it for a workstation check of a policed VM to pass). 198.51.100.0/24 is TEST-NET-2
/// (RFC 5737), never a real network; note that `plans/payments-estate.toml` uses it for
/// vlan-310, where .254 is no VM's address, so an `ipBlock` admitting that VLAN admits the
/// workstation too.
pub const WORKSTATION_IP: std::net::IpAddr = std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 254));

/// The most connections the sim keeps open by default: at the cap, a new connection
/// closes the oldest idle one (see [`server::serve_connections`]).
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request's headers, and how long a keep-alive
/// connection may wait for its next request: the API server's `ReadHeaderTimeout`
/// (staging/src/k8s.io/apiserver/pkg/server/secure_serving.go).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);

/// How long a request other than a watch may take, reading its body included, before it
/// is answered 504 Timeout: the API server's `--request-timeout` default (1 minute;
/// staging/src/k8s.io/apiserver/pkg/server/config.go `RequestTimeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connection limits of the sim's HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most (see [`MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            store: StoreOptions::default(),
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(10),
            watch_max_duration: None,
            nodes: 3,
            extra_objects: Vec::new(),
            extension: Arc::default(),
            faults: ApiFaults::default(),
            kubevirt_webhooks: false,
            access: access::Authorizer::default(),
            node_resources: BTreeMap::new(),
            bare_nodes: Vec::new(),
            limits: store::StoreLimits::default(),
            connections: ConnLimits::default(),
            crds: resources::Crds::default(),
        }
    }
}

/// The running server's shared state: its store, shutdown signal and request counters.
pub struct SimServer {
    store: Arc<Store>,
    shutdown: signal::Sender<bool>,
    stats: Arc<ApiStats>,
}

/// API faults a scenario injects: a share of requests answered `503 ServiceUnavailable`
/// (the server error Kubernetes clients retry with backoff), and a
/// delay before every answer. Which requests fail is a function of the seed and the
/// request's sequence number, so a run is repeatable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiFaults {
    /// 0.0–1.0.
    pub error_rate: f64,
    /// The status the injected errors answer with: 500 (the default), 429, 502, 503 or 504.
    pub error_code: u16,
    pub latency: Duration,
    pub seed: u64,
}

/// Header on the simulated controllers' requests (see [`SimHandle::controller_client`]).
pub const CONTROLLER_HEADER: &str = "x-wavelift-sim-controller";

/// What the API server served (the engine benchmark counts requests per VM with it).
#[derive(Debug, Default)]
pub struct ApiStats {
    /// Kubernetes API requests (not the world endpoints).
    pub requests: std::sync::atomic::AtomicU64,
    /// Of those, watch requests.
    pub watches: std::sync::atomic::AtomicU64,
    /// Of those, answered with an injected 500.
    pub injected_errors: std::sync::atomic::AtomicU64,
    /// Connections open now.
    pub connections_open: std::sync::atomic::AtomicU64,
    /// Connections accepted so far.
    pub connections_accepted: std::sync::atomic::AtomicU64,
    /// Idle connections closed to make room for new ones (see [`ConnLimits`]).
    pub connections_evicted: std::sync::atomic::AtomicU64,
    /// New connections closed at once because every open one was busy.
    pub connections_refused: std::sync::atomic::AtomicU64,
}

impl ApiStats {
    /// (requests, watches, injected errors) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.requests.load(Relaxed),
            self.watches.load(Relaxed),
            self.injected_errors.load(Relaxed),
        )
    }
}

impl SimServer {
    /// Start a server (same as [`start`]).
    pub async fn start(opts: SimOptions) -> anyhow::Result<SimHandle> {
        start(opts).await
    }

    /// The object store, for in-process seeding and controllers.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Request counters.
    pub fn stats(&self) -> &ApiStats {
        &self.stats
    }
}

/// A running sim.
pub struct SimHandle {
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    server: Arc<SimServer>,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared server state.
    pub fn server(&self) -> &Arc<SimServer> {
        &self.server
    }

    /// The object store, for in-process seeding and controllers.
    pub fn store(&self) -> &Arc<Store> {
        &self.server.store
    }

    /// A kube client talking to this sim over plain HTTP.
    pub fn client(&self) -> kube::Client {
        self.client_with(Vec::new())
    }

    /// The client of the simulated controllers (CDI, KubeVirt). Its requests carry
    /// [`CONTROLLER_HEADER`], and injected API errors spare them: the faults model the API
    /// server as wavelift sees it, while real CDI and KubeVirt controllers requeue on errors
    /// of their own.
    pub fn controller_client(&self) -> kube::Client {
        self.client_with(vec![(
            http::HeaderName::from_static(CONTROLLER_HEADER),
            http::HeaderValue::from_static("1"),
        )])
    }

    fn client_with(&self, headers: Vec<(http::HeaderName, http::HeaderValue)>) -> kube::Client {
        let url = self
            .url()
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://127.0.0.1"));
        let mut config = kube::Config::new(url);
        config.headers = headers;
        kube::Client::try_from(config)
            .unwrap_or_else(|e| panic!("a plain-HTTP loopback kube config is always valid: {e}"))
    }

    /// Write a kubeconfig (cluster, context and user `wavelift-sim`) pointing at this sim.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        let text = kubeconfig_text(&self.url());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Stop serving: ends watch streams, then the server (abandoning it after 5 s).
    pub async fn shutdown(self) {
        let _ = self.server.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// The kubeconfig text for a sim at `url`.
pub fn kubeconfig_text(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wavelift-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: wavelift-sim\n  context:\n    cluster: wavelift-sim\n    user: wavelift-sim\n    namespace: default\ncurrent-context: wavelift-sim\nusers:\n- name: wavelift-sim\n  user: {{}}\npreferences: {{}}\n"
    )
}

/// The namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often the simulated kubelets renew their node Lease, and its duration: kubelet's
/// defaults (`nodeLeaseDurationSeconds` 40, renewed every quarter of it;
/// kubernetes pkg/kubelet/kubelet.go, component-helpers/apimachinery/lease/controller.go).
const NODE_LEASE_SECONDS: u64 = 40;
const NODE_LEASE_RENEW: Duration = Duration::from_secs(NODE_LEASE_SECONDS / 4);

fn default_objects(
    nodes: usize,
    resources: &BTreeMap<String, String>,
    bare: &[String],
) -> Vec<Value> {
    // The namespaces every cluster starts with (kube-apiserver's system namespaces
    // controller, pkg/controlplane/controller/systemnamespaces).
    let mut out: Vec<Value> = [
        "default",
        "kube-system",
        "kube-public",
        NODE_LEASE_NAMESPACE,
    ]
    .iter()
    .map(|ns| {
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns},
            "status": {"phase": "Active"},
        })
    })
    .collect();
    for i in 1..=nodes {
        let mut node = node_object(i);
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let resources = if bare.iter().any(|b| b == name) {
            &BTreeMap::new()
        } else {
            resources
        };
        for (k, v) in resources {
            node["status"]["capacity"][k] = json!(v);
            node["status"]["allocatable"][k] = json!(v);
        }
        out.push(node);
    }
    out.push(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "sim-standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "sim.wavelift.io/hostpath",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    }));
    out
}

/// A simulated node as its kubelet registers and reports it: the labels of
/// `kubelet_node_status.go` (`initialNode`), and the status the setters of
/// kubernetes pkg/kubelet/nodestatus/setters.go write: addresses, capacity and allocatable
/// (`MachineInfo`), the whole `nodeInfo` (`MachineInfo` + `VersionInfo`: every field the
/// API marks required), the kubelet endpoint (`DaemonEndpoints`) and the four conditions
/// with their heartbeat and transition times (`MemoryPressureCondition`,
/// `DiskPressureCondition`, `PIDPressureCondition`, `ReadyCondition`).
fn node_object(i: usize) -> Value {
    let name = format!("sim-node-{i}");
    let now = store::now_rfc3339();
    // Stable per node name (a machine keeps its machine-id and SMBIOS UUID); the boot ID
    // is new on every start, as after a reboot.
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let machine_id = format!("{h:032x}");
    let system_uuid = uuid::Uuid::from_u128(h.rotate_left(64)).to_string();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubevirt.io/schedulable": "true",
        }},
        "spec": {},
        "status": {
            "capacity": {"cpu": "64", "memory": "512Gi", "pods": "250", "ephemeral-storage": "1Ti", "hugepages-1Gi": "0", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": "62", "memory": "500Gi", "pods": "250", "ephemeral-storage": "950Gi", "hugepages-1Gi": "0", "hugepages-2Mi": "0"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": format!("10.0.0.{}", 10 + i)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": machine_id,
                "systemUUID": system_uuid,
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": "6.8.0-wavelift-sim",
                "osImage": "wavelift simulated node",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": discovery::GIT_VERSION,
                // Deprecated; kubelets no longer report it (DisableNodeKubeProxyVersion),
                // but the field is required and served empty.
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// A node's heartbeat Lease as its kubelet creates it (component-helpers/apimachinery/lease/
/// controller.go `newLease`): named after the node, held by it, owned by the Node object.
fn node_lease(node: &Value) -> Value {
    let name = node.pointer("/metadata/name").cloned().unwrap_or_default();
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {
            "name": name, "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": name,
                "uid": node.pointer("/metadata/uid").cloned().unwrap_or_default(),
            }],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": NODE_LEASE_SECONDS,
            "renewTime": store::now_rfc3339_micro(),
        },
    })
}

/// The simulated kubelets' lease renewals, until the server stops.
async fn renew_node_leases(
    store: Arc<Store>,
    nodes: Vec<String>,
    mut stop: signal::Receiver<bool>,
) {
    let Some(leases) = resources::find("coordination.k8s.io", "v1", "leases") else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(NODE_LEASE_RENEW) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        for node in &nodes {
            let _ = store.mutate(
                leases,
                NODE_LEASE_NAMESPACE,
                node,
                store::Part::Main,
                &store::WriteOptions::default(),
                |cur| {
                    let mut lease = cur.cloned().unwrap_or_default();
                    lease["spec"]["renewTime"] = json!(store::now_rfc3339_micro());
                    Ok(lease)
                },
            );
        }
    }
}

/// Create one object in-process from its `apiVersion` + `kind` (status kept).
pub fn seed_object(store: &Store, obj: Value) -> anyhow::Result<Value> {
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let res = resources::find_kind(av, &kind)
        .with_context(|| format!("the sim does not serve {av}, Kind={kind}"))?;
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let opts = store::WriteOptions {
        keep_status: true,
        ..store::WriteOptions::default()
    };
    store
        .create(res, &ns, obj, &opts)
        .map_err(|e| anyhow::anyhow!("seeding {kind}: {e}"))
}

/// Start the sim on 127.0.0.1 (`opts.port`, or an ephemeral port for 0).
pub async fn start(opts: SimOptions) -> anyhow::Result<SimHandle> {
    let mut store = Store::new(opts.store.clone())
        .with_limits(opts.limits)
        .with_crds(opts.crds.clone());
    if opts.kubevirt_webhooks {
        store = store.with_admission(admission::installed);
    }
    let store = Arc::new(store);
    let mut node_names = Vec::new();
    for obj in default_objects(opts.nodes, &opts.node_resources, &opts.bare_nodes) {
        let created = seed_object(&store, obj)?;
        if created["kind"] == "Node" {
            seed_object(&store, node_lease(&created))?;
            if let Some(n) = created.pointer("/metadata/name").and_then(Value::as_str) {
                node_names.push(n.to_string());
            }
        }
    }
    for obj in opts.extra_objects.iter().cloned() {
        seed_object(&store, obj)?;
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", opts.port))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = signal::channel(false);
    let stats = Arc::new(ApiStats::default());
    let state = Arc::new(server::ApiState {
        store: store.clone(),
        max_body_bytes: opts.max_body_bytes,
        bookmark_interval: opts.bookmark_interval,
        watch_max_duration: opts.watch_max_duration,
        server_address: addr.to_string(),
        shutdown: rx.clone(),
        extension: opts.extension.clone(),
        faults: opts.faults.clone(),
        stats: stats.clone(),
        access: opts.access.clone(),
        request_timeout: opts.connections.request_timeout,
    });
    let app = axum::Router::new()
        .fallback(server::handle)
        .with_state(state);
    tokio::spawn(renew_node_leases(store.clone(), node_names, rx.clone()));
    let task = tokio::spawn(server::serve_connections(
        listener,
        app,
        opts.connections,
        stats.clone(),
        rx,
    ));
    Ok(SimHandle {
        addr,
        server: Arc::new(SimServer {
            store,
            shutdown: tx,
            stats,
        }),
        task,
    })
}

/// `wavelift sim serve`: start, write the kubeconfig, print how to use it, serve until
/// Ctrl-C.
pub async fn serve_forever(opts: SimOptions, kubeconfig_path: PathBuf) -> anyhow::Result<()> {
    let handle = start(opts).await?;
    handle.write_kubeconfig(&kubeconfig_path)?;
    println!(
        "wavelift sim serving the Kubernetes API at {}",
        handle.url()
    );
    println!("export KUBECONFIG={}", kubeconfig_path.display());
    println!("then try: kubectl get nodes; kubectl api-resources; kubectl get vm -A");
    println!("Ctrl-C stops the sim (its state lives in memory only).");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn simulated_kubelets_renew_their_node_leases() {
        let store = Arc::new(Store::new(StoreOptions::default()));
        for obj in default_objects(1, &BTreeMap::new(), &[]) {
            let created = seed_object(&store, obj).expect("seed");
            if created["kind"] == "Node" {
                seed_object(&store, node_lease(&created)).expect("lease");
            }
        }
        let leases = resources::find("coordination.k8s.io", "v1", "leases").expect("served");
        let rv = |s: &Store| {
            s.get(leases, NODE_LEASE_NAMESPACE, "sim-node-1")
                .map(|l| store::rv_of(&l))
                .expect("the node lease exists")
        };
        let before = rv(&store);
        let (tx, rx) = signal::channel(false);
        let task = tokio::spawn(renew_node_leases(
            store.clone(),
            vec!["sim-node-1".into()],
            rx,
        ));
        tokio::time::sleep(NODE_LEASE_RENEW + Duration::from_millis(1)).await;
        assert!(rv(&store) > before, "renewed after {NODE_LEASE_RENEW:?}");
        let lease = store
            .get(leases, NODE_LEASE_NAMESPACE, "sim-node-1")
            .expect("lease");
        assert_eq!(lease["spec"]["holderIdentity"], "sim-node-1");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        let _ = tx.send(true);
        task.await.expect("the renewals stop with the server");
    }
}
