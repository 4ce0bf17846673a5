//! The rehearsal network enforces Kubernetes policy (issue 17): `networking.k8s.io/v1`
//! NetworkPolicies on the pod network and `k8s.cni.cncf.io` MultiNetworkPolicies on the
//! NADs their `policy-for` annotation names, with the semantics of
//! [`crate::policy::eval`], for traffic to a migrated VM's (virt-launcher) pod.
//!
//! What the world keeps ([`PolicyNet`]):
//! - a snapshot of the policies per namespace, replaced by [`run`] as its watches of both
//!   kinds report changes (no polling): a probe reads one `Arc` of its namespace, and a
//!   namespace without policies costs one map lookup;
//! - per running VMI, its pod's namespace, labels and, per address, the network it is on
//!   (set by the simulated KubeVirt when the guest brings its addresses up).
//!
//! Source VMs in vSphere are not subject to cluster policy, and neither is anything that is
//! not a VMI's pod here.

use crate::policy::eval::{self, Endpoint, Peer, Verdict};
use crate::policy::k8s::PolicyDoc;
use crate::policy::rules::Proto;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// The policies whose default deny blocks a flow (`MultiNetworkPolicy ns/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyVerdict {
    pub by: Vec<String>,
}

/// A running VMI's pod as policy sees it.
#[derive(Debug, Clone, Default)]
pub struct PodTarget {
    pub namespace: String,
    /// The virt-launcher pod's labels: the VMI's (from the VM template, so wavelift's
    /// `wavelift.io/plan`, `wavelift.io/vm`, …) plus `kubevirt.io: virt-launcher` and
    /// `vm.kubevirt.io/name` (kubevirt pkg/virt-controller/services/template.go).
    pub labels: BTreeMap<String, String>,
    /// Each address of the guest and the network it is on: `Some("ns/nad")` for an
    /// interface on a Multus network, `None` for the pod network.
    pub addresses: Vec<(String, Option<String>)>,
}

/// Which watch a namespace's policies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    NetworkPolicy,
    MultiNetworkPolicy,
}

#[derive(Debug, Default)]
struct NsPolicies {
    by_source: HashMap<Source, Vec<PolicyDoc>>,
    /// Every policy of the namespace, for evaluation.
    all: Arc<Vec<PolicyDoc>>,
}

/// The policy state of the simulated network.
#[derive(Debug)]
pub struct PolicyNet {
    by_ns: RwLock<HashMap<String, NsPolicies>>,
    pods: RwLock<HashMap<String, Arc<PodTarget>>>,
    /// Bumped on every change of a namespace's policies (see [`PolicyNet::wait_until`]).
    generation: tokio::sync::watch::Sender<u64>,
}

impl Default for PolicyNet {
    fn default() -> Self {
        PolicyNet {
            by_ns: RwLock::default(),
            pods: RwLock::default(),
            generation: tokio::sync::watch::channel(0).0,
        }
    }
}

impl PolicyNet {
    /// Waits until `cond` holds of the network's policies (checked now and after every
    /// change the watches apply): how a test knows the network has seen a policy it wrote.
    pub async fn wait_until(&self, cond: impl Fn(&PolicyNet) -> bool) {
        let mut rx = self.generation.subscribe();
        loop {
            rx.borrow_and_update();
            if cond(self) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn set(&self, source: Source, ns: &str, docs: Vec<PolicyDoc>) {
        self.set_inner(source, ns, docs);
        self.generation.send_modify(|g| *g += 1);
    }

    fn set_inner(&self, source: Source, ns: &str, docs: Vec<PolicyDoc>) {
        let mut m = self.by_ns.write().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(ns.to_string()).or_default();
        if docs.is_empty() {
            e.by_source.remove(&source);
        } else {
            e.by_source.insert(source, docs);
        }
        if e.by_source.is_empty() {
            m.remove(ns);
            return;
        }
        // A stable order (NetworkPolicies, then MultiNetworkPolicies; by name) so that
        // answers name policies the same way every time.
        let mut all = Vec::new();
        for s in [Source::NetworkPolicy, Source::MultiNetworkPolicy] {
            all.extend(e.by_source.get(&s).into_iter().flatten().cloned());
        }
        e.all = Arc::new(all);
    }

    /// The policies of namespace `ns` (`None` when it has none).
    pub fn policies(&self, ns: &str) -> Option<Arc<Vec<PolicyDoc>>> {
        self.by_ns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)
            .map(|e| e.all.clone())
    }

    /// Records (or with `None` forgets) VMI `key`'s (`NS/NAME`) pod.
    pub fn set_pod(&self, key: &str, pod: Option<PodTarget>) {
        let mut m = self.pods.write().unwrap_or_else(|p| p.into_inner());
        match pod {
            Some(p) => {
                m.insert(key.to_string(), Arc::new(p));
            }
            None => {
                m.remove(key);
            }
        }
    }

    /// VMI `key`'s pod, when it runs.
    pub fn pod(&self, key: &str) -> Option<Arc<PodTarget>> {
        self.pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The verdict on a flow from `from` to `ip` on VMI `key`'s pod, or `None` when no
    /// policy applies (the VMI is unknown, or its namespace has no policy): the caller
    /// answers as without policy. `source_pod` is the VMI holding `from`, if any (for
    /// `podSelector`/`namespaceSelector` peers).
    pub fn ingress(
        &self,
        key: &str,
        ip: &str,
        from: IpAddr,
        source_pod: Option<&str>,
        port: Option<u16>,
    ) -> Option<Verdict> {
        let ns = key.split_once('/').map_or(key, |(ns, _)| ns);
        let policies = self.policies(ns)?;
        let pod = self.pod(key)?;
        let network = pod
            .addresses
            .iter()
            .find(|(a, _)| a == ip)
            .and_then(|(_, n)| n.clone());
        let to = Endpoint::new(&pod.namespace, &pod.labels).on_network(network.as_deref());
        let src = source_pod.and_then(|k| self.pod(k));
        let src_net;
        let peer = Peer {
            ip: from,
            pod: match &src {
                Some(s) => {
                    src_net = s
                        .addresses
                        .iter()
                        .find(|(a, _)| a.parse::<IpAddr>().ok() == Some(from))
                        .and_then(|(_, n)| n.clone());
                    Some(Endpoint::new(&s.namespace, &s.labels).on_network(src_net.as_deref()))
                }
                None => None,
            },
        };
        let proto = if port.is_some() {
            Proto::Tcp
        } else {
            Proto::Icmp
        };
        Some(eval::ingress(&policies, &to, peer, proto, port).verdict)
    }
}

/// The `k8s.cni.cncf.io` MultiNetworkPolicy resource the watch reads (v1beta2; both served
/// versions share one storage).
fn mnp_resource() -> ApiResource {
    ApiResource {
        group: crate::policy::k8s::MNP_GROUP.into(),
        version: "v1beta2".into(),
        api_version: format!("{}/v1beta2", crate::policy::k8s::MNP_GROUP),
        kind: "MultiNetworkPolicy".into(),
        plural: "multi-networkpolicies".into(),
    }
}

fn np_resource() -> ApiResource {
    ApiResource {
        group: "networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        plural: "networkpolicies".into(),
    }
}

fn doc_of(o: &DynamicObject, ar: &ApiResource) -> Option<PolicyDoc> {
    let mut v = serde_json::to_value(o).ok()?;
    if v.get("apiVersion").is_none() {
        v["apiVersion"] = serde_json::json!(ar.api_version);
    }
    if v.get("kind").is_none() {
        v["kind"] = serde_json::json!(ar.kind);
    }
    // A policy the evaluator cannot read (a MultiNetworkPolicy without `policy-for`)
    // governs no network, as the multi-networkpolicy implementations skip it.
    eval::policy_from_value(&v, "default").ok()
}

/// Keeps the network's policy snapshots in step with the cluster: one watch per kind; on every
/// change the namespace's list is rebuilt from the watch's own cache.
pub async fn run(client: Client, net: Arc<PolicyNet>) {
    let np = watch_kind(
        client.clone(),
        net.clone(),
        np_resource(),
        Source::NetworkPolicy,
    );
    let mnp = watch_kind(client, net, mnp_resource(), Source::MultiNetworkPolicy);
    futures::join!(np, mnp);
}

async fn watch_kind(client: Client, net: Arc<PolicyNet>, ar: ApiResource, source: Source) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut cache: HashMap<String, BTreeMap<String, PolicyDoc>> = HashMap::new();
    let mut pending: Option<HashMap<String, BTreeMap<String, PolicyDoc>>> = None;
    let publish = |cache: &HashMap<String, BTreeMap<String, PolicyDoc>>, ns: &str| {
        let docs: Vec<PolicyDoc> = cache
            .get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        net.set(source, ns, docs);
    };
    let mut s = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = s.next().await {
        let Ok(ev) = ev else { continue };
        match ev {
            Event::Init => pending = Some(HashMap::new()),
            Event::InitApply(o) => {
                if let (Some(p), Some(d)) = (pending.as_mut(), doc_of(&o, &ar)) {
                    p.entry(d.namespace.clone())
                        .or_default()
                        .insert(d.name.clone(), d);
                }
            }
            Event::InitDone => {
                let fresh = pending.take().unwrap_or_default();
                let mut namespaces: Vec<String> = cache.keys().cloned().collect();
                namespaces.extend(fresh.keys().cloned());
                cache = fresh;
                for ns in namespaces {
                    publish(&cache, &ns);
                }
            }
            Event::Apply(o) => {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let name = o.metadata.name.clone().unwrap_or_default();
                match doc_of(&o, &ar) {
                    Some(d) => {
                        cache.entry(ns.clone()).or_default().insert(name, d);
                    }
                    None => {
                        if let Some(m) = cache.get_mut(&ns) {
                            m.remove(&name);
                        }
                    }
                }
                publish(&cache, &ns);
            }
            Event::Delete(o) => {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let name = o.metadata.name.clone().unwrap_or_default();
                if let Some(m) = cache.get_mut(&ns) {
                    m.remove(&name);
                    if m.is_empty() {
                        cache.remove(&ns);
                    }
                }
                publish(&cache, &ns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_without_policies_costs_nothing_and_policy_for_scopes() {
        let net = PolicyNet::default();
        let docs = eval::read_policies("t", "apiVersion: k8s.cni.cncf.io/v1beta2\nkind: MultiNetworkPolicy\nmetadata: {name: web, namespace: mig, annotations: {k8s.v1.cni.cncf.io/policy-for: vlan-210}}\nspec:\n  podSelector: {matchLabels: {wavelift.io/vm: web}}\n  ingress: [{from: [{ipBlock: {cidr: 192.0.2.0/24}}]}]\n").expect("valid");
        let pod = PodTarget {
            namespace: "mig".into(),
            labels: BTreeMap::from([("wavelift.io/vm".into(), "web".into())]),
            addresses: vec![
                ("192.0.2.15".into(), Some("mig/vlan-210".into())),
                ("10.244.1.2".into(), None),
            ],
        };
        net.set_pod("mig/web", Some(pod));
        let from: IpAddr = "198.51.100.254".parse().unwrap();
        assert_eq!(
            net.ingress("mig/web", "192.0.2.15", from, None, Some(80)),
            None
        );
        net.set(Source::MultiNetworkPolicy, "mig", docs);
        assert_eq!(
            net.ingress("mig/web", "192.0.2.15", from, None, Some(80)),
            Some(Verdict::Deny {
                by: vec!["MultiNetworkPolicy mig/web".into()]
            })
        );
        let inside: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(net
            .ingress("mig/web", "192.0.2.15", inside, None, None)
            .is_some_and(|v| v.allowed()));
        // The pod network is not governed by a MultiNetworkPolicy.
        assert_eq!(
            net.ingress("mig/web", "10.244.1.2", from, None, Some(80)),
            Some(Verdict::NotIsolated)
        );
        net.set(Source::MultiNetworkPolicy, "mig", Vec::new());
        assert!(net.policies("mig").is_none());
    }
}
