//! The resource table: every kind the sim serves, with the discovery facts kubectl shows.

/// Verbs every served resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource (a group/version/plural and what discovery says about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural resource name used in paths.
    pub plural: &'static str,
    /// Singular name (lower-case kind).
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Short names (`vm`, `dv`, ...).
    pub short_names: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Categories (`all`, `kubevirt`, ...).
    pub categories: &'static [&'static str],
    /// Has a `/status` subresource: the main resource ignores status changes.
    pub has_status: bool,
    /// A built-in Kubernetes kind (strategic merge patch accepted) rather than a custom resource.
    pub builtin: bool,
    /// The verbs discovery lists and the server accepts ([`VERBS`], or `create` alone for
    /// the review kinds, which are answered rather than stored).
    pub verbs: &'static [&'static str],
    /// The kind's REST strategy `AllowCreateOnUpdate()`: a PUT to a missing object creates it.
    pub create_on_update: bool,
    /// The kind's REST strategy `AllowUnconditionalUpdate()`: a PUT without
    /// `metadata.resourceVersion` overwrites; otherwise it is 422 Invalid.
    pub unconditional_update: bool,
}

impl ResourceDef {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Kind` + `List`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Served by Create alone and never stored (SelfSubjectAccessReview): the server
    /// answers the posted object with its status filled in.
    pub fn create_only(&self) -> bool {
        self.verbs == ["create"]
    }

    /// Path prefix of the group-version: `/api/v1` or `/apis/G/V`.
    pub fn gv_path(&self) -> String {
        gv_path(self.group, self.version)
    }
}

/// Path prefix of a group-version: `/api/v1` or `/apis/G/V`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The KubeVirt subresource API group (start/stop/restart/migrate on virtual machines).
pub const SUBRESOURCES_GROUP: &str = "subresources.kubevirt.io";

macro_rules! res {
    ($g:expr, $v:expr, $p:expr, $s:expr, $k:expr, [$($sn:expr),*], $ns:expr, [$($c:expr),*], $st:expr, $b:expr) => {
        ResourceDef {
            group: $g,
            version: $v,
            plural: $p,
            singular: $s,
            kind: $k,
            short_names: &[$($sn),*],
            namespaced: $ns,
            categories: &[$($c),*],
            has_status: $st,
            builtin: $b,
            verbs: VERBS,
            create_on_update: false,
            // Built-in strategies mostly allow it; `customResourceStrategy` does not
            // (apiextensions-apiserver pkg/registry/customresource/strategy.go).
            unconditional_update: $b,
        }
    };
}

static RESOURCES: &[ResourceDef] = &[
    res!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        ["ns"],
        false,
        [],
        true,
        true
    ),
    res!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        ["no"],
        false,
        [],
        true,
        true
    ),
    res!(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        [],
        true,
        [],
        false,
        true
    ),
    res!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        ["cm"],
        true,
        [],
        false,
        true
    ),
    res!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        ["po"],
        true,
        ["all"],
        true,
        true
    ),
    res!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        ["svc"],
        true,
        ["all"],
        true,
        true
    ),
    res!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        ["ev"],
        true,
        [],
        false,
        true
    ),
    res!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        ["pvc"],
        true,
        [],
        true,
        true
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        ["sc"],
        false,
        [],
        false,
        true
    ),
    // kubernetes pkg/registry/coordination/lease/strategy.go: AllowCreateOnUpdate true,
    // AllowUnconditionalUpdate false (an update must carry the resourceVersion it read,
    // which is what client-go's leader election relies on).
    ResourceDef {
        create_on_update: true,
        unconditional_update: false,
        ..res!(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            [],
            true,
            [],
            false,
            true
        )
    },
    // kubernetes pkg/registry/authorization/selfsubjectaccessreview/rest.go: a cluster-scoped
    // REST with Create only (no storage): the answer is the review with its status filled.
    ResourceDef {
        verbs: &["create"],
        ..res!(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "selfsubjectaccessreview",
            "SelfSubjectAccessReview",
            [],
            false,
            [],
            false,
            true
        )
    },
    res!(
        "k8s.cni.cncf.io",
        "v1",
        "network-attachment-definitions",
        "network-attachment-definition",
        "NetworkAttachmentDefinition",
        ["net-attach-def"],
        true,
        [],
        false,
        false
    ),
    // The multi-networkpolicy CRD (k8snetworkplumbingwg/multi-networkpolicy `scheme.yml`:
    // plural `multi-networkpolicies`, short name `multi-policy`, namespaced, no status
    // subresource). Both versions are served, as by the installations that enable
    // v1beta2 (the one with `endPort`); they share one storage (`conversion: None`).
    res!(
        "k8s.cni.cncf.io",
        "v1beta2",
        "multi-networkpolicies",
        "multi-networkpolicy",
        "MultiNetworkPolicy",
        ["multi-policy"],
        true,
        [],
        false,
        false
    ),
    res!(
        "k8s.cni.cncf.io",
        "v1beta1",
        "multi-networkpolicies",
        "multi-networkpolicy",
        "MultiNetworkPolicy",
        ["multi-policy"],
        true,
        [],
        false,
        false
    ),
    // kubernetes pkg/registry/networking/networkpolicy (short name `netpol`; the status
    // field was removed in 1.28, so no status subresource).
    res!(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        ["netpol"],
        true,
        [],
        false,
        true
    ),
    res!(
        "cdi.kubevirt.io",
        "v1beta1",
        "datavolumes",
        "datavolume",
        "DataVolume",
        ["dv", "dvs"],
        true,
        ["all"],
        true,
        false
    ),
    res!(
        "kubevirt.io",
        "v1",
        "virtualmachines",
        "virtualmachine",
        "VirtualMachine",
        ["vm", "vms"],
        true,
        ["all"],
        true,
        false
    ),
    res!(
        "kubevirt.io",
        "v1",
        "virtualmachineinstances",
        "virtualmachineinstance",
        "VirtualMachineInstance",
        ["vmi", "vmis"],
        true,
        ["all"],
        true,
        false
    ),
    res!(
        "kubevirt.io",
        "v1",
        "virtualmachineinstancemigrations",
        "virtualmachineinstancemigration",
        "VirtualMachineInstanceMigration",
        ["vmim", "vmims"],
        true,
        ["all"],
        true,
        false
    ),
    // Forklift (kubev2v/forklift operator/config/crd/bases/forklift.konveyor.io_*.yaml):
    // namespaced, `subresources: {status: {}}`, no short names or categories. Served only
    // while the scenario installs Forklift ([`Crds::forklift`]).
    res!(
        FORKLIFT_GROUP,
        "v1beta1",
        "providers",
        "provider",
        "Provider",
        [],
        true,
        [],
        true,
        false
    ),
    res!(
        FORKLIFT_GROUP,
        "v1beta1",
        "networkmaps",
        "networkmap",
        "NetworkMap",
        [],
        true,
        [],
        true,
        false
    ),
    res!(
        FORKLIFT_GROUP,
        "v1beta1",
        "storagemaps",
        "storagemap",
        "StorageMap",
        [],
        true,
        [],
        true,
        false
    ),
    res!(
        FORKLIFT_GROUP,
        "v1beta1",
        "plans",
        "plan",
        "Plan",
        [],
        true,
        [],
        true,
        false
    ),
    res!(
        FORKLIFT_GROUP,
        "v1beta1",
        "migrations",
        "migration",
        "Migration",
        [],
        true,
        [],
        true,
        false
    ),
    res!(
        FORKLIFT_GROUP,
        "v1beta1",
        "hooks",
        "hook",
        "Hook",
        [],
        true,
        [],
        true,
        false
    ),
];

/// Forklift's API group.
pub const FORKLIFT_GROUP: &str = "forklift.konveyor.io";

/// The custom resource definitions an installation adds beyond the ones every sim serves
/// (KubeVirt, CDI, Multus): today Forklift's, whose operator may be absent or older.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crds {
    /// Forklift's CRDs, when the operator is installed.
    pub forklift: Option<ForkliftCrds>,
}

impl Default for Crds {
    /// Forklift installed, the newest release modelled.
    fn default() -> Self {
        Crds {
            forklift: Some(ForkliftCrds::default()),
        }
    }
}

/// What an installed Forklift's CRDs look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkliftCrds {
    /// The release (`2.12.5`).
    pub version: (u32, u32, u32),
}

impl Default for ForkliftCrds {
    fn default() -> Self {
        ForkliftCrds {
            version: FORKLIFT_LATEST,
        }
    }
}

/// The newest Forklift release the sim models (the mirror's last tag).
pub const FORKLIFT_LATEST: (u32, u32, u32) = (2, 12, 5);

/// The first release whose Plan CRD has `spec.targetPowerState` (and `vms[].targetPowerState`):
/// kubev2v/forklift `pkg/apis/forklift/v1beta1/plan.go` has it from tag v2.10.4 on (v2.10.3
/// and older lack it; the structural schema prunes the unknown field).
pub const FORKLIFT_TARGET_POWER_STATE: (u32, u32, u32) = (2, 10, 4);

impl ForkliftCrds {
    /// Whether the Plan CRD has `targetPowerState`.
    pub fn target_power_state(&self) -> bool {
        self.version >= FORKLIFT_TARGET_POWER_STATE
    }
}

impl Crds {
    /// No optional CRDs (a bare API server with KubeVirt and CDI).
    pub fn none() -> Self {
        Crds { forklift: None }
    }

    /// Whether `res` is served.
    pub fn serves(&self, res: &ResourceDef) -> bool {
        res.group != FORKLIFT_GROUP || self.forklift.is_some()
    }

    /// Whether the group-version is served.
    pub fn serves_group(&self, group: &str) -> bool {
        group != FORKLIFT_GROUP || self.forklift.is_some()
    }
}

/// Every served resource.
pub fn all() -> &'static [ResourceDef] {
    RESOURCES
}

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind in a group-version (`apiVersion` + `kind` of an object).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The served group-versions, in discovery order: (group, version).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out.push((SUBRESOURCES_GROUP, "v1"));
    out
}

/// Subresources served by `subresources.kubevirt.io/v1` on virtual machines.
pub const VM_ACTIONS: &[&str] = &["start", "stop", "restart", "migrate"];
