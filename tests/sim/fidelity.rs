//! Fidelity of what the sim serves, judged by real clients: every built-in object is complete
//! (each field the Kubernetes OpenAPI schema marks required is there) and survives a typed
//! round trip losslessly; Leases behave as client-go's leader election needs (create races,
//! resourceVersion-guarded updates, 409s with proper Statuses); SelfSubjectAccessReviews and
//! scenario-denied permissions answer as an RBAC-enabled API server does; and two more
//! official clients — the Python `kubernetes` client and the machine's `kubectl` — read
//! everything the sim serves.
//!
//! k8s-openapi fills missing required fields with defaults when it deserializes, so a
//! successful parse proves nothing on its own: the checks compare the JSON the sim served
//! with the typed re-serialization, and look the required fields up in the served JSON.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Node, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::core::Status;
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use wavelift::sim::access::{AccessRule, Authorizer};
use wavelift::sim::{self, resources, SimHandle, SimOptions};

/// Fields the Kubernetes OpenAPI schema marks `required`, as (kind, path, fields); a path
/// step ending in `[]` means every element of that list, and the fields are required
/// wherever the path exists (the parents themselves are optional unless listed).
///
/// Source: the `required` lists of the upstream OpenAPI v3 documents
/// (kubernetes/kubernetes api/openapi-spec/v3/api__v1_openapi.json,
/// apis__storage.k8s.io__v1_openapi.json, apis__coordination.k8s.io__v1_openapi.json,
/// apis__authorization.k8s.io__v1_openapi.json), as generated into the official Python client
/// kubernetes==37.0.2 (the pydantic fields without a default) and cross-checked against
/// k8s-openapi 0.29 (`v1_37`: the fields that are not `Option`). ObjectMeta, LeaseSpec,
/// Secret, ConfigMap and Toleration have no required fields.
const REQUIRED: &[(&str, &str, &[&str])] = &[
    // io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference (every kind's metadata).
    (
        "*",
        "metadata.ownerReferences[]",
        &["apiVersion", "kind", "name", "uid"],
    ),
    // io.k8s.api.core.v1.NodeAddress, NodeCondition, DaemonEndpoint, NodeSystemInfo,
    // Taint, AttachedVolume.
    ("Node", "status.addresses[]", &["address", "type"]),
    ("Node", "status.conditions[]", &["status", "type"]),
    ("Node", "status.daemonEndpoints.kubeletEndpoint", &["Port"]),
    (
        "Node",
        "status.nodeInfo",
        &[
            "architecture",
            "bootID",
            "containerRuntimeVersion",
            "kernelVersion",
            "kubeProxyVersion",
            "kubeletVersion",
            "machineID",
            "operatingSystem",
            "osImage",
            "systemUUID",
        ],
    ),
    ("Node", "spec.taints[]", &["effect", "key"]),
    ("Node", "status.volumesAttached[]", &["devicePath", "name"]),
    // io.k8s.api.core.v1.NamespaceCondition.
    ("Namespace", "status.conditions[]", &["status", "type"]),
    // io.k8s.api.core.v1.PersistentVolumeClaimCondition, TypedLocalObjectReference,
    // TypedObjectReference, LabelSelectorRequirement, ModifyVolumeStatus.
    (
        "PersistentVolumeClaim",
        "status.conditions[]",
        &["status", "type"],
    ),
    (
        "PersistentVolumeClaim",
        "spec.dataSource",
        &["kind", "name"],
    ),
    (
        "PersistentVolumeClaim",
        "spec.dataSourceRef",
        &["kind", "name"],
    ),
    (
        "PersistentVolumeClaim",
        "spec.selector.matchExpressions[]",
        &["key", "operator"],
    ),
    (
        "PersistentVolumeClaim",
        "status.modifyVolumeStatus",
        &["status"],
    ),
    // io.k8s.api.storage.v1.StorageClass, TopologySelectorLabelRequirement.
    ("StorageClass", "", &["provisioner"]),
    (
        "StorageClass",
        "allowedTopologies[].matchLabelExpressions[]",
        &["key", "values"],
    ),
    // io.k8s.api.core.v1.Event.
    ("Event", "", &["involvedObject", "metadata"]),
    // io.k8s.api.core.v1.PodSpec, Container, ContainerPort, EnvVar, VolumeMount, Volume,
    // PodReadinessGate, HostAlias, PodOS, Sysctl, PodSchedulingGate,
    // TopologySpreadConstraint, PodCondition, ContainerStatus, PodIP, HostIP.
    ("Pod", "spec", &["containers"]),
    ("Pod", "spec.containers[]", &["name"]),
    ("Pod", "spec.containers[].ports[]", &["containerPort"]),
    ("Pod", "spec.containers[].env[]", &["name"]),
    (
        "Pod",
        "spec.containers[].volumeMounts[]",
        &["mountPath", "name"],
    ),
    ("Pod", "spec.initContainers[]", &["name"]),
    ("Pod", "spec.volumes[]", &["name"]),
    ("Pod", "spec.readinessGates[]", &["conditionType"]),
    ("Pod", "spec.hostAliases[]", &["ip"]),
    ("Pod", "spec.os", &["name"]),
    ("Pod", "spec.securityContext.sysctls[]", &["name", "value"]),
    ("Pod", "spec.schedulingGates[]", &["name"]),
    (
        "Pod",
        "spec.topologySpreadConstraints[]",
        &["maxSkew", "topologyKey", "whenUnsatisfiable"],
    ),
    ("Pod", "status.conditions[]", &["status", "type"]),
    (
        "Pod",
        "status.containerStatuses[]",
        &["image", "imageID", "name", "ready", "restartCount"],
    ),
    (
        "Pod",
        "status.initContainerStatuses[]",
        &["image", "imageID", "name", "ready", "restartCount"],
    ),
    ("Pod", "status.podIPs[]", &["ip"]),
    ("Pod", "status.hostIPs[]", &["ip"]),
    // io.k8s.api.core.v1.ServicePort.
    ("Service", "spec.ports[]", &["port"]),
    // io.k8s.api.authorization.v1.SelfSubjectAccessReview, SubjectAccessReviewStatus.
    ("SelfSubjectAccessReview", "", &["spec"]),
    ("SelfSubjectAccessReview", "status", &["allowed"]),
];

/// What a real cluster always serves beyond the schema's required fields, as (kind, path,
/// fields): here the path must exist too. Each line names the upstream code that writes it.
const ALWAYS_SERVED: &[(&str, &str, &[&str])] = &[
    // apiserver rest.FillObjectMetaSystemFields, the storage's resourceVersion.
    (
        "*",
        "metadata",
        &["name", "uid", "resourceVersion", "creationTimestamp"],
    ),
    // kubelet nodestatus/setters.go: MachineInfo, NodeAddress, DaemonEndpoints, VersionInfo
    // and the four conditions, each with heartbeat and transition times.
    (
        "Node",
        "status",
        &[
            "capacity",
            "allocatable",
            "conditions",
            "addresses",
            "daemonEndpoints",
            "nodeInfo",
        ],
    ),
    (
        "Node",
        "status.conditions[]",
        &[
            "lastHeartbeatTime",
            "lastTransitionTime",
            "reason",
            "message",
        ],
    ),
    // core/v1 defaults.go SetDefaults_Namespace, namespace strategy PrepareForCreate.
    ("Namespace", "status", &["phase"]),
    ("Namespace", "spec", &["finalizers"]),
    (
        "Namespace",
        "metadata.labels",
        &["kubernetes.io/metadata.name"],
    ),
    // core/v1 defaults.go SetDefaults_PodSpec / SetDefaults_Container, pod strategy
    // PrepareForCreate, DefaultTolerationSeconds admission.
    ("Pod", "status", &["phase", "qosClass"]),
    (
        "Pod",
        "spec",
        &[
            "restartPolicy",
            "dnsPolicy",
            "schedulerName",
            "terminationGracePeriodSeconds",
            "securityContext",
            "tolerations",
        ],
    ),
    (
        "Pod",
        "spec.containers[]",
        &[
            "imagePullPolicy",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "resources",
        ],
    ),
    // SetDefaults_PersistentVolumeClaimSpec, SetDefaults_PersistentVolumeClaim.
    ("PersistentVolumeClaim", "spec", &["volumeMode"]),
    ("PersistentVolumeClaim", "status", &["phase"]),
    // SetDefaults_Secret; storage/v1 SetDefaults_StorageClass; SetDefaults_Service.
    ("Secret", "", &["type"]),
    ("StorageClass", "", &["reclaimPolicy", "volumeBindingMode"]),
    ("Service", "spec", &["type", "sessionAffinity"]),
    ("Service", "spec.ports[]", &["protocol", "targetPort"]),
];

/// The values at `path` (`a.b[].c`); `None` when a step is missing (or not a list where
/// `[]` says one).
fn at<'a>(v: &'a Value, path: &str) -> Option<Vec<&'a Value>> {
    let mut cur = vec![v];
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let (key, each) = match step.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (step, false),
        };
        let mut next = Vec::new();
        for c in cur {
            let child = c.get(key)?;
            if each {
                next.extend(child.as_array()?.iter());
            } else {
                next.push(child);
            }
        }
        cur = next;
    }
    Some(cur)
}

/// The fields of `table` missing from an object of `kind` (`must_exist`: the paths too).
fn missing(
    kind: &str,
    obj: &Value,
    table: &[(&str, &str, &[&str])],
    must_exist: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, path, fields) in table.iter().filter(|(k, ..)| *k == "*" || *k == kind) {
        let Some(nodes) = at(obj, path) else {
            if must_exist {
                out.push(format!("{k}: {path} is missing"));
            }
            continue;
        };
        if must_exist && nodes.is_empty() {
            out.push(format!("{k}: {path} is empty"));
        }
        for (i, node) in nodes.iter().enumerate() {
            for f in *fields {
                if node.get(*f).is_none_or(Value::is_null) {
                    out.push(format!("{k}: {path} (#{i}) lacks {f}"));
                }
            }
        }
    }
    out
}

/// Paths where `a` and `b` differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(&p, u, v, out),
                    (Some(u), None) => out.push(format!("{p}: served {u}, lost in the round trip")),
                    (None, Some(v)) => {
                        out.push(format!("{p}: not served, the round trip adds {v}"))
                    }
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), u, v, out);
            }
        }
        _ if a != b => out.push(format!("{path}: served {a}, round trip {b}")),
        _ => {}
    }
}

/// (b) and (c): `served` deserializes into `K` and re-serializes to exactly itself; (d): it
/// has every required field, and what a real server always fills in.
fn check_object<K: DeserializeOwned + Serialize>(kind: &str, what: &str, served: &Value) {
    let typed: K = serde_json::from_value(served.clone())
        .unwrap_or_else(|e| panic!("{what}: not a valid {kind}: {e}\n{served:#}"));
    let back = serde_json::to_value(&typed).expect("serializes");
    let mut diffs = Vec::new();
    diff("", served, &back, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{what}: the typed round trip is not lossless:\n{}\nserved: {served:#}",
        diffs.join("\n")
    );
    let mut lacks = missing(kind, served, REQUIRED, false);
    // A review is answered, never stored: it has no name, uid or resourceVersion.
    if kind != "SelfSubjectAccessReview" {
        lacks.extend(missing(kind, served, ALWAYS_SERVED, true));
    }
    assert!(
        lacks.is_empty(),
        "{what}: incomplete:\n{}\nserved: {served:#}",
        lacks.join("\n")
    );
}

async fn get_json(client: &Client, path: &str) -> Value {
    let req = http::Request::get(path).body(Vec::new()).expect("request");
    let text = client
        .request_text(req)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
}

/// (a)–(d) for one kind: the list of every namespace and each named object, fetched over
/// HTTP with the kube-rs client; the typed list through `Api` as well. Returns the kind.
async fn check_kind<K>(client: &Client, objects: &[(&str, &str)]) -> &'static str
where
    K: k8s_openapi::Resource + DeserializeOwned + Serialize + Clone + std::fmt::Debug,
    K: kube::Resource<DynamicType = ()>,
{
    let res = resources::find_kind(K::API_VERSION, K::KIND)
        .unwrap_or_else(|| panic!("the sim does not serve {}", K::KIND));
    let list_path = format!("{}/{}", res.gv_path(), res.plural);
    let list = get_json(client, &list_path).await;
    assert_eq!(list["kind"], format!("{}List", K::KIND), "{list_path}");
    let items = list["items"]
        .as_array()
        .expect("items is required in a list");
    for (ns, name) in objects {
        let item = items
            .iter()
            .find(|i| {
                i["metadata"]["name"] == *name
                    && (ns.is_empty() || i["metadata"]["namespace"] == *ns)
            })
            .unwrap_or_else(|| panic!("{list_path} does not list {ns}/{name}"));
        check_object::<K>(K::KIND, &format!("{list_path} item {ns}/{name}"), item);
        let item_path = if res.namespaced {
            format!("{}/namespaces/{ns}/{}/{name}", res.gv_path(), res.plural)
        } else {
            format!("{}/{}/{name}", res.gv_path(), res.plural)
        };
        let got = get_json(client, &item_path).await;
        check_object::<K>(K::KIND, &format!("GET {item_path}"), &got);
    }
    for item in items {
        check_object::<K>(
            K::KIND,
            &format!("{list_path} item {}", item["metadata"]["name"]),
            item,
        );
    }
    let typed: Vec<K> = Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("kube-rs list {}: {e}", K::KIND))
        .items;
    assert_eq!(typed.len(), items.len(), "{}", K::KIND);
    K::KIND
}

fn typed<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

async fn sim_with(access: Authorizer) -> SimHandle {
    sim::start(SimOptions {
        access,
        ..SimOptions::default()
    })
    .await
    .expect("sim starts")
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// The objects the tests create, one of each kind the sim serves but does not seed.
async fn create_one_of_each(client: &Client) {
    let pp = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(&pp, &typed(json!({"metadata": {"name": "fidelity"}})))
        .await
        .expect("namespace");
    let ns = |c: &Client| c.clone();
    Api::<PersistentVolumeClaim>::namespaced(ns(client), "fidelity")
        .create(
            &pp,
            &typed(json!({
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sim-standard",
                         "resources": {"requests": {"storage": "1Gi"}}},
            })),
        )
        .await
        .expect("pvc");
    Api::<Secret>::namespaced(ns(client), "fidelity")
        .create(
            &pp,
            &typed(json!({"metadata": {"name": "creds"}, "stringData": {"user": "admin"}})),
        )
        .await
        .expect("secret");
    Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(ns(client), "fidelity")
        .create(
            &pp,
            &typed(json!({"metadata": {"name": "web"},
                "spec": {"podSelector": {"matchLabels": {"wavelift.io/vm": "web"}},
                         "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}],
                                      "ports": [{"port": 8000, "endPort": 8080}]}]}})),
        )
        .await
        .expect("networkpolicy");
    Api::<ConfigMap>::namespaced(ns(client), "fidelity")
        .create(
            &pp,
            &typed(json!({
                "metadata": {"name": "settings", "labels": {"app": "wavelift"}},
                "data": {"wave": "1", "plan.toml": "name = \"x\"\n"},
                "binaryData": {"blob": "AAEC"},
            })),
        )
        .await
        .expect("configmap");
    Api::<StorageClass>::all(ns(client))
        .create(
            &pp,
            &typed(
                json!({"metadata": {"name": "sim-fast"}, "provisioner": "sim.wavelift.io/block"}),
            ),
        )
        .await
        .expect("storageclass");
    Api::<Pod>::namespaced(ns(client), "fidelity")
        .create(
            &pp,
            &typed(json!({
                "metadata": {"name": "probe", "labels": {"app": "probe"}},
                "spec": {"containers": [{
                    "name": "probe", "image": "registry.example/probe:1.0",
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "TARGET", "value": "10.0.0.5"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }]},
            })),
        )
        .await
        .expect("pod");
    Api::<Service>::namespaced(ns(client), "fidelity")
        .create(
            &pp,
            &typed(json!({
                "metadata": {"name": "probe"},
                "spec": {"selector": {"app": "probe"}, "ports": [{"port": 80}]},
            })),
        )
        .await
        .expect("service");
    let mut event: Event = typed(json!({
        "metadata": {"name": "probe.1"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "fidelity", "name": "probe"},
        "reason": "Probed", "message": "probe answered", "type": "Normal",
        "source": {"component": "wavelift"}, "count": 1,
        "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:05Z",
        "reportingComponent": "wavelift", "reportingInstance": "wavelift-1",
    }));
    event.event_time = Some(now_micro());
    Api::<Event>::namespaced(ns(client), "fidelity")
        .create(&pp, &event)
        .await
        .expect("event");
    Api::<Lease>::namespaced(ns(client), "fidelity")
        .create(&pp, &lease("plan-quickstart", "wavelift-a", 15))
        .await
        .expect("lease");
}

fn lease(name: &str, holder: &str, seconds: i32) -> Lease {
    Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now_micro()),
            renew_time: Some(now_micro()),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn every_built_in_kind_is_complete_and_round_trips_losslessly() {
    let sim = sim_with(Authorizer::default()).await;
    let client = sim.client();
    create_one_of_each(&client).await;
    let nodes: Vec<(&str, &str)> = vec![("", "sim-node-1"), ("", "sim-node-2"), ("", "sim-node-3")];
    let mut checked = BTreeSet::new();
    checked.insert(check_kind::<Node>(&client, &nodes).await);
    checked.insert(
        check_kind::<Namespace>(
            &client,
            &[
                ("", "default"),
                ("", "kube-system"),
                ("", "kube-public"),
                ("", "kube-node-lease"),
                ("", "fidelity"),
            ],
        )
        .await,
    );
    checked.insert(check_kind::<PersistentVolumeClaim>(&client, &[("fidelity", "data")]).await);
    checked.insert(
        check_kind::<StorageClass>(&client, &[("", "sim-standard"), ("", "sim-fast")]).await,
    );
    checked.insert(check_kind::<Secret>(&client, &[("fidelity", "creds")]).await);
    checked.insert(check_kind::<ConfigMap>(&client, &[("fidelity", "settings")]).await);
    checked.insert(check_kind::<Event>(&client, &[("fidelity", "probe.1")]).await);
    checked.insert(check_kind::<Pod>(&client, &[("fidelity", "probe")]).await);
    checked.insert(check_kind::<Service>(&client, &[("fidelity", "probe")]).await);
    checked.insert(
        check_kind::<k8s_openapi::api::networking::v1::NetworkPolicy>(
            &client,
            &[("fidelity", "web")],
        )
        .await,
    );
    checked.insert(
        check_kind::<Lease>(
            &client,
            &[
                ("fidelity", "plan-quickstart"),
                ("kube-node-lease", "sim-node-1"),
            ],
        )
        .await,
    );

    // A review is answered, not stored: check the answer to a create.
    let body = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "create", "group": "kubevirt.io", "resource": "virtualmachines", "namespace": "fidelity"}},
    });
    let req = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request");
    let answer: Value =
        serde_json::from_str(&client.request_text(req).await.expect("review")).expect("json");
    check_object::<SelfSubjectAccessReview>("SelfSubjectAccessReview", "the review", &answer);
    assert_eq!(answer["status"], json!({"allowed": true}), "{answer:#}");
    checked.insert("SelfSubjectAccessReview");

    let served: BTreeSet<&str> = resources::all()
        .iter()
        .filter(|r| r.builtin)
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        checked, served,
        "every built-in kind the sim serves is checked here"
    );

    // What the defaults made of the objects, spot-checked against upstream values.
    let pod = get_json(&client, "/api/v1/namespaces/fidelity/pods/probe").await;
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "Burstable"})
    );
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    let ns = get_json(&client, "/api/v1/namespaces/fidelity").await;
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "fidelity"
    );
    // Built-in strategies do not set metadata.generation (custom resources do).
    let lease = get_json(
        &client,
        "/apis/coordination.k8s.io/v1/namespaces/fidelity/leases/plan-quickstart",
    )
    .await;
    assert_eq!(lease["metadata"].get("generation"), None, "{lease:#}");
    let node = get_json(&client, "/api/v1/nodes/sim-node-1").await;
    let types: Vec<&str> = node["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    assert_eq!(
        node["status"]["nodeInfo"]["kubeletVersion"],
        "v1.32.0-wavelift-sim"
    );
    assert_eq!(
        node["status"]["nodeInfo"]["machineID"]
            .as_str()
            .map(str::len),
        Some(32)
    );
    sim.shutdown().await;
}

fn api_err(e: kube::Error) -> Box<Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API Status error, got {other:?}"),
    }
}

/// client-go tools/leaderelection `tryAcquireOrRenew`, reduced to what the server sees: Get;
/// on NotFound Create; a valid lease held by another is left alone; otherwise Update the
/// record read (carrying its resourceVersion), counting a transition when the holder
/// changes. Returns whether `me` holds the lease afterwards, or the API error that stopped it.
async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    name: &str,
    me: &str,
) -> Result<bool, Box<Status>> {
    let current = match leases.get_opt(name).await.map_err(api_err)? {
        None => {
            leases
                .create(&PostParams::default(), &lease(name, me, 1))
                .await
                .map_err(api_err)?;
            return Ok(true);
        }
        Some(l) => l,
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let expired = renewed
        .is_none_or(|r| k8s_openapi::jiff::Timestamp::now().as_second() > r.as_second() + duration);
    if holder != me && !expired {
        return Ok(false);
    }
    let mut next = current.clone();
    let s = next.spec.get_or_insert_with(Default::default);
    if holder != me {
        s.holder_identity = Some(me.into());
        s.acquire_time = Some(now_micro());
        s.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    s.renew_time = Some(now_micro());
    leases
        .replace(name, &PostParams::default(), &next)
        .await
        .map_err(api_err)?;
    Ok(true)
}

#[tokio::test]
async fn leases_give_leader_election_its_optimistic_concurrency() {
    let sim = sim_with(Authorizer::default()).await;
    let (a, b) = (sim.client(), sim.client());
    let (la, lb): (Api<Lease>, Api<Lease>) =
        (Api::default_namespaced(a), Api::default_namespaced(b));
    let pp = PostParams::default();

    for round in 0..10 {
        let name = format!("race-{round}");
        // Two drivers acquire by create at once: exactly one wins, the other gets 409.
        let (for_a, for_b) = (lease(&name, "driver-a", 15), lease(&name, "driver-b", 15));
        let (ra, rb) = tokio::join!(la.create(&pp, &for_a), lb.create(&pp, &for_b));
        let (winner, loser) = match (ra, rb) {
            (Ok(w), Err(e)) | (Err(e), Ok(w)) => (w, api_err(e)),
            (ra, rb) => panic!("exactly one create must win: {ra:?} / {rb:?}"),
        };
        assert_eq!(
            (loser.code, loser.reason.as_str()),
            (409, "AlreadyExists"),
            "{loser:?}"
        );
        let holder = winner.spec.as_ref().and_then(|s| s.holder_identity.clone());

        // Both read the same resourceVersion and replace: exactly one update wins.
        let (ga, gb) = tokio::join!(la.get(&name), lb.get(&name));
        let (mut ga, mut gb) = (ga.expect("get"), gb.expect("get"));
        assert_eq!(ga.metadata.resource_version, gb.metadata.resource_version);
        for (l, who) in [(&mut ga, "driver-a"), (&mut gb, "driver-b")] {
            let s = l.spec.get_or_insert_with(Default::default);
            s.holder_identity = Some(who.into());
            s.renew_time = Some(now_micro());
        }
        let (ua, ub) = tokio::join!(la.replace(&name, &pp, &ga), lb.replace(&name, &pp, &gb));
        let (updated, conflict) = match (ua, ub) {
            (Ok(w), Err(e)) | (Err(e), Ok(w)) => (w, api_err(e)),
            (ua, ub) => panic!("exactly one replace must win ({holder:?}): {ua:?} / {ub:?}"),
        };
        assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
        assert!(conflict.is_failure(), "{conflict:?}");
        assert_eq!(
            conflict.message,
            format!("Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again")
        );
        let details = conflict.details.as_ref().expect("details");
        assert_eq!(
            (
                details.name.as_str(),
                details.group.as_str(),
                details.kind.as_str()
            ),
            (name.as_str(), "coordination.k8s.io", "leases")
        );
        let rv = |l: &Lease| -> u64 {
            l.metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .expect("a numeric resourceVersion")
        };
        assert!(rv(&updated) > rv(&ga));
    }

    // The lease strategy does not allow unconditional updates: a PUT without a
    // resourceVersion is 422, and a PUT to a missing lease creates it (201).
    let mut bare = la.get("race-0").await.expect("get");
    bare.metadata.resource_version = None;
    let e = api_err(
        la.replace("race-0", &pp, &bare)
            .await
            .expect_err("unconditional"),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    assert_eq!(
        e.message,
        "leases.coordination.k8s.io \"race-0\" is invalid: [metadata.resourceVersion: Invalid value: 0x0: must be specified for an update]"
    );
    let created = la
        .replace("put-created", &pp, &lease("put-created", "driver-a", 15))
        .await
        .expect("create on update");
    assert!(created.metadata.uid.is_some());

    // MicroTime is RFC 3339 with exactly six fractional digits; the server re-renders
    // offsets in UTC and rejects other layouts as undecodable (400).
    let raw = |spec: Value| {
        http::Request::post("/apis/coordination.k8s.io/v1/namespaces/default/leases")
            .header("content-type", "application/json")
            .body(
                serde_json::to_vec(&json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": spec["n"]}, "spec": spec["s"]}))
                    .expect("json"),
            )
            .expect("request")
    };
    let client = sim.client();
    let ok: Value = serde_json::from_str(
        &client
            .request_text(raw(
                json!({"n": "offset", "s": {"renewTime": "2026-01-02T05:04:05.000001+02:00"}}),
            ))
            .await
            .expect("an offset is fine"),
    )
    .expect("json");
    assert_eq!(ok["spec"]["renewTime"], "2026-01-02T03:04:05.000001Z");
    let e = api_err(
        client
            .request_text(raw(
                json!({"n": "seconds", "s": {"renewTime": "2026-01-02T03:04:05Z"}}),
            ))
            .await
            .expect_err("no fraction"),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"), "{e:?}");
    assert!(
        e.message
            .starts_with("Lease in version \"v1\" cannot be handled as a Lease: parsing time"),
        "{e:?}"
    );

    // client-go's loop: a holds, b cannot take a valid lease; once it expires b takes it
    // over with an update (one transition), and a's renewal from its stale read is a 409.
    assert_eq!(
        try_acquire_or_renew(&la, "plan", "driver-a").await,
        Ok(true)
    );
    assert_eq!(
        try_acquire_or_renew(&lb, "plan", "driver-b").await,
        Ok(false)
    );
    let stale = la.get("plan").await.expect("get");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        try_acquire_or_renew(&lb, "plan", "driver-b").await,
        Ok(true)
    );
    let now = lb.get("plan").await.expect("get");
    let spec = now.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("driver-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    let e = api_err(
        la.replace("plan", &pp, &stale)
            .await
            .expect_err("stale renew"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    sim.shutdown().await;
}

fn review(verb: &str, group: &str, resource: &str, namespace: &str) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn vm(name: &str) -> DynamicObject {
    typed(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "disk0", "disk": {"bus": "virtio"}}]}, "memory": {"guest": "1Gi"}},
            "volumes": [{"name": "disk0", "dataVolume": {"name": format!("{name}-disk0")}}],
        }}},
    }))
}

#[tokio::test]
async fn access_reviews_and_denied_permissions_answer_like_rbac() {
    let denied = Authorizer {
        deny: vec![
            AccessRule::new("create", "kubevirt.io", "virtualmachines"),
            AccessRule::new("list", "", "secrets"),
        ],
    };
    let sim = sim_with(denied).await;
    let client = sim.client();
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let pp = PostParams::default();
    let ask = |r: SelfSubjectAccessReview| {
        let reviews = reviews.clone();
        async move {
            reviews
                .create(&PostParams::default(), &r)
                .await
                .expect("review")
        }
    };
    let no = ask(review(
        "create",
        "kubevirt.io",
        "virtualmachines",
        "default",
    ))
    .await;
    let status = no.status.expect("status");
    assert!(!status.allowed);
    assert_eq!(
        status.denied, None,
        "RBAC has no opinion rather than denying"
    );
    let yes = ask(review("get", "kubevirt.io", "virtualmachines", "default")).await;
    assert!(yes.status.expect("status").allowed);
    let yes = ask(review(
        "create",
        "kubevirt.io",
        "virtualmachines/migrate",
        "default",
    ))
    .await;
    assert!(
        yes.status.expect("status").allowed,
        "a subresource is a resource of its own"
    );

    // The denied request itself is a 403 with the API server's message.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    );
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let e = api_err(vms.create(&pp, &vm("web-01")).await.expect_err("forbidden"));
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"), "{e:?}");
    assert_eq!(
        e.message,
        "virtualmachines.kubevirt.io is forbidden: User \"system:anonymous\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"default\""
    );
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let e = api_err(
        secrets
            .list(&ListParams::default())
            .await
            .expect_err("forbidden"),
    );
    assert_eq!(
        e.message,
        "secrets is forbidden: User \"system:anonymous\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(
        secrets.get_opt("absent").await.expect("get is allowed"),
        None
    );
    // The simulated controllers run under accounts of their own.
    let ctl: Api<DynamicObject> = Api::namespaced_with(sim.controller_client(), "default", &ar);
    ctl.create(&pp, &vm("web-02"))
        .await
        .expect("the controllers are not the user");

    // Validation (exactly one of resourceAttributes / nonResourceAttributes), and a review
    // kind serves create alone.
    let e = api_err(
        reviews
            .create(&pp, &SelfSubjectAccessReview::default())
            .await
            .expect_err("empty spec"),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    let e = api_err(
        reviews
            .list(&ListParams::default())
            .await
            .expect_err("not listable"),
    );
    assert_eq!(e.code, 405, "{e:?}");
    let discovery = get_json(&client, "/apis/authorization.k8s.io/v1").await;
    assert_eq!(
        discovery["resources"][0],
        json!({"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]})
    );
    sim.shutdown().await;

    // Without denials everything is allowed.
    let open = sim_with(Authorizer::default()).await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(open.client());
    let r = reviews
        .create(
            &pp,
            &review("create", "kubevirt.io", "virtualmachines", "default"),
        )
        .await
        .expect("review");
    assert!(r.status.expect("status").allowed);
    open.shutdown().await;
}

/// The interpreter with the official Python client: `$WAVELIFT_TEST_PYTHON`, or the
/// virtualenv `tools/install-test-clients` makes. Missing is a failure, not a skip.
fn test_python() -> PathBuf {
    let python = std::env::var_os("WAVELIFT_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let venv = std::env::var_os("WAVELIFT_TEST_VENV")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| Path::new(&h).join(".cache/wavelift/test-clients/venv"))
                })?;
            Some(venv.join("bin/python"))
        })
        .expect("HOME or WAVELIFT_TEST_PYTHON is set");
    let probe = Command::new(&python)
        .args([
            "-c",
            "import kubernetes, sys; print(kubernetes.__version__)",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout);
            assert!(
                version.trim().starts_with("37."),
                "{} has kubernetes {version}, the tests pin 37.x: run tools/install-test-clients",
                python.display()
            );
            python
        }
        other => panic!(
            "the official Python Kubernetes client is required and {} cannot import it ({other:?}): run tools/install-test-clients",
            python.display()
        ),
    }
}

#[test]
#[ignore = "needs python3 with the kubernetes client (tools/test installs it)"]
fn the_official_python_client_reads_everything_sim_serve_serves() {
    let python = test_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::serve::SimServer::start(&["--speed", "1000"], dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_list_nodes.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&server.kubeconfig)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{stderr}",
        script.display()
    );
    for kind in [
        "nodes 3",
        "namespaces",
        "persistentvolumeclaims",
        "storageclasses",
        "configmaps",
        "leases",
        "pods",
        "events",
        "selfsubjectaccessreview allowed=True",
        "lease conflict 409",
    ] {
        assert!(stdout.contains(kind), "{kind:?} missing from:\n{stdout}");
    }
}

#[test]
fn kubectl_gets_nodes_configmaps_leases_and_pods_and_asks_can_i() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        "[[rbac_deny]]\nverb = \"create\"\ngroup = \"kubevirt.io\"\nresource = \"virtualmachines\"\n",
    )
    .expect("scenario");
    let server = common::serve::SimServer::start(
        &["--scenario", scenario.to_str().expect("utf8")],
        dir.path(),
    );
    let kubectl = |args: &[&str]| {
        let out = server.kubectl(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let manifest = dir.path().join("objects.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {wave: "1"}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: plan-quickstart, namespace: default}
spec: {holderIdentity: wavelift-a, leaseDurationSeconds: 15, renewTime: "2026-01-02T03:04:05.000000Z"}
---
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: default}
spec:
  containers: [{name: probe, image: "registry.example/probe:1.0"}]
"#,
    )
    .expect("manifest");
    let (code, out, err) = kubectl(&["apply", "-f", manifest.to_str().expect("utf8")]);
    assert_eq!(code, Some(0), "{out}{err}");

    let (code, out, err) = kubectl(&["get", "nodes,cm,leases,pods", "-o", "yaml"]);
    assert_eq!(code, Some(0), "{err}");
    let list = wavelift::sim::patch::parse_json_or_yaml(out.as_bytes()).expect("yaml");
    let items = list["items"].as_array().expect("items");
    let count = |kind: &str| items.iter().filter(|i| i["kind"] == kind).count();
    assert_eq!(
        (
            count("Node"),
            count("ConfigMap"),
            count("Lease"),
            count("Pod")
        ),
        (3, 1, 1, 1),
        "{out}"
    );
    for item in items {
        let kind = item["kind"].as_str().unwrap_or_default();
        let lacks = missing(kind, item, REQUIRED, false);
        assert!(lacks.is_empty(), "{kind}: {lacks:?}");
        let lacks = missing(kind, item, ALWAYS_SERVED, true);
        assert!(lacks.is_empty(), "{kind}: {lacks:?}");
    }

    // The printer columns of kubectl's own printers for these kinds.
    let (code, out, err) = kubectl(&["get", "cm,leases"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("DATA") && out.contains("HOLDER") && out.contains("wavelift-a"),
        "{out}"
    );

    // describe reads the node's heartbeat Lease from kube-node-lease.
    let (code, out, err) = kubectl(&["describe", "node", "sim-node-1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("HolderIdentity:  sim-node-1") && !out.contains("Failed to get lease"),
        "{out}"
    );
    let (code, out, err) = kubectl(&["get", "nodes", "-o", "wide"]);
    assert_eq!(code, Some(0), "{err}");
    for wide in [
        "VERSION",
        "INTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
        "10.0.0.11",
        "containerd://",
    ] {
        assert!(out.contains(wide), "{wide} missing:\n{out}");
    }

    // `kubectl auth can-i` asks with a SelfSubjectAccessReview (sent as protobuf), and the
    // denied request itself is refused with the API server's Forbidden message.
    let (code, out, err) = kubectl(&["auth", "can-i", "create", "virtualmachines.kubevirt.io"]);
    assert_eq!((code, out.trim()), (Some(1), "no"), "{err}");
    let (code, out, err) = kubectl(&["auth", "can-i", "create", "leases.coordination.k8s.io"]);
    assert_eq!((code, out.trim()), (Some(0), "yes"), "{err}");
    let vm = dir.path().join("vm.yaml");
    std::fs::write(
        &vm,
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: web-01, namespace: default}\nspec: {runStrategy: Halted, template: {spec: {domain: {devices: {}}}}}\n",
    )
    .expect("vm");
    let (code, _, err) = kubectl(&["create", "-f", vm.to_str().expect("utf8")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Error from server (Forbidden)") && err.contains("User \"system:anonymous\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"default\""),
        "{err}"
    );
}
