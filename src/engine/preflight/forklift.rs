//! Preflight with the Forklift backend (`[plan] backend = "forklift"`):
//!
//! - Forklift's CRDs are served and their schemas have the fields wavelift writes
//!   ([`schema_problems`]): a Plan CRD without `spec.targetPowerState` (Forklift older than
//!   2.10.4) would silently drop it and boot every VM before wavelift's duplicate-IP guard,
//!   so it is refused, naming the minimum version.
//! - The source Provider (wavelift's, or `forklift_provider`) is `Ready` ([`verdict`]).
//! - The Plans are created for real, without a Migration (a Plan alone moves nothing), and
//!   waited for: `Ready`, or any condition of category `Critical` or `Error` (Forklift's
//!   `VMNotFound`, `VMNetworksNotMapped`, `VMStorageNotMapped`, `MacConflicts`…), named.
//!   Forklift validates only Plans that exist: under `--dry-run` nothing is created and the
//!   report says Forklift's validation did not run.
//!
//! Every object is server-side applied with `fieldValidation=Strict` (an unknown field is
//! an error, not a silent prune), labelled for the plan (and the wave, for Plans).

use crate::cluster::forklift::{self as fk, PlanGroup, SourceConn};
use crate::cluster::forklift_types::{category, conditions as ct, API_VERSION};
use crate::cluster::labels;
use crate::plan::Plan;
use crate::source::Credentials;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The first Forklift release whose Plan has `targetPowerState`.
pub const MIN_FORKLIFT: &str = "2.10.4";

/// The Forklift resource of a kind.
pub fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "Provider" => "providers",
        "NetworkMap" => "networkmaps",
        "StorageMap" => "storagemaps",
        "Plan" => "plans",
        "Migration" => "migrations",
        _ => "hooks",
    };
    ApiResource {
        group: "forklift.konveyor.io".into(),
        version: "v1beta1".into(),
        api_version: API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// What the fields wavelift writes need from the OpenAPI v3 document of
/// `forklift.konveyor.io/v1beta1` (`/openapi/v3/apis/forklift.konveyor.io/v1beta1`).
pub fn schema_problems(doc: &Value) -> Vec<String> {
    let schemas = doc.pointer("/components/schemas");
    let spec_props = |kind: &str| {
        schemas
            .and_then(|s| s.get(format!("io.konveyor.forklift.v1beta1.{kind}")))
            .and_then(|k| k.pointer("/properties/spec/properties"))
    };
    let mut out = Vec::new();
    let needs: &[(&str, &[&str])] = &[
        ("Provider", &["type", "url", "secret", "settings"]),
        ("NetworkMap", &["provider", "map"]),
        ("StorageMap", &["provider", "map"]),
        (
            "Plan",
            &[
                "provider",
                "map",
                "vms",
                "targetNamespace",
                "type",
                "preserveStaticIPs",
                "targetLabels",
                "targetPowerState",
            ],
        ),
        ("Migration", &["plan", "cutover", "cancel"]),
    ];
    for (kind, fields) in needs {
        let Some(props) = spec_props(kind) else {
            out.push(format!(
                "Forklift's {kind} CRD is not served (forklift.konveyor.io/v1beta1): install Forklift (MTV) {MIN_FORKLIFT} or newer"
            ));
            continue;
        };
        for f in *fields {
            if props.get(*f).is_some() {
                continue;
            }
            if *kind == "Plan" && *f == "targetPowerState" {
                out.push(format!(
                    "Forklift's Plan CRD has no spec.targetPowerState: this Forklift is older than {MIN_FORKLIFT} and would silently drop it and boot each VM before wavelift's duplicate-IP guard; upgrade Forklift (MTV) to {MIN_FORKLIFT} or newer"
                ));
            } else {
                out.push(format!(
                    "Forklift's {kind} CRD has no spec.{f}: upgrade Forklift (MTV) to {MIN_FORKLIFT} or newer"
                ));
            }
        }
    }
    out
}

/// Asks the cluster for Forklift's schemas; problems by name (not installed: one problem).
pub async fn crd_problems(client: &Client) -> Vec<String> {
    let req = match http::Request::get("/openapi/v3/apis/forklift.konveyor.io/v1beta1")
        .body(Vec::new())
    {
        Ok(r) => r,
        Err(e) => return vec![format!("Forklift schema request: {e}")],
    };
    match client.request::<Value>(req).await {
        Ok(doc) => schema_problems(&doc),
        Err(kube::Error::Api(e)) if e.code == 404 => vec![format!(
            "Forklift is not installed: the cluster does not serve forklift.konveyor.io/v1beta1 (backend = \"forklift\" needs Forklift/MTV {MIN_FORKLIFT} or newer; or use backend = \"cdi\")"
        )],
        Err(e) => vec![format!("Forklift's API schema could not be read: {e}")],
    }
}

/// Where a Provider or Plan stands after Forklift validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not validated yet (no `Ready`, nothing blocking).
    Pending,
    Ready,
    /// Conditions of category Critical or Error: `Type: message [items]`.
    Blocked(Vec<String>),
}

/// The verdict of a Forklift object from its `status.conditions`.
pub fn verdict(obj: &Value) -> Verdict {
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let blocking: Vec<String> = conds
        .iter()
        .filter(|c| c["status"] == "True")
        .filter(|c| c["category"] == category::CRITICAL || c["category"] == category::ERROR)
        .map(|c| {
            let mut s = format!(
                "{}: {}",
                c["type"].as_str().unwrap_or("?"),
                c["message"].as_str().unwrap_or("")
            );
            if let Some(items) = c["items"].as_array().filter(|i| !i.is_empty()) {
                let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                s.push_str(&format!(" [{}]", items.join(", ")));
            }
            s
        })
        .collect();
    if !blocking.is_empty() {
        return Verdict::Blocked(blocking);
    }
    if conds
        .iter()
        .any(|c| c["type"] == ct::READY && c["status"] == "True")
    {
        Verdict::Ready
    } else {
        Verdict::Pending
    }
}

fn strict_apply(dry_run: bool) -> PatchParams {
    let mut p = PatchParams::apply(labels::FIELD_MANAGER).force();
    p.field_validation = Some(ValidationDirective::Strict);
    if dry_run {
        p.dry_run()
    } else {
        p
    }
}

/// Server-side applies one object (Forklift kinds, or the Provider's Secret).
pub async fn apply(client: &Client, obj: &Value, dry_run: bool) -> Result<(), String> {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let ar = if kind == "Secret" {
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        }
    } else {
        resource(&kind)
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let what = format!("apply {kind} {name}");
    let pp = strict_apply(dry_run);
    let patch = Patch::Apply(obj);
    crate::cluster::call::call(&what, || api.patch(&name, &pp, &patch))
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(s) => format!("{what}: {}", s.message),
            other => format!("{what}: {other}"),
        })
}

/// The objects of a plan's Forklift setup, in apply order: the Provider Secret and source
/// Provider (unless `forklift_provider` names an existing one), the destination Provider,
/// the NetworkMaps and the StorageMap. `source` is needed only when wavelift writes the
/// source Provider.
pub fn setup_objects(
    plan: &Plan,
    source: Option<(&Credentials, &SourceConn)>,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    if plan.meta.forklift_provider.is_none() {
        let (creds, conn) = source.ok_or(
            "the Forklift source Provider needs vCenter credentials and its certificate (or set `forklift_provider` to use an existing Provider)",
        )?;
        out.push(fk::provider_secret(
            plan,
            &creds.user,
            creds.password.expose(),
            conn,
        ));
        out.push(fk::source_provider(plan, conn));
    }
    out.push(fk::destination_provider(plan));
    out.extend(fk::network_maps(plan));
    out.push(fk::storage_map(plan));
    Ok(out)
}

/// How Forklift reaches a real vCenter: its SDK endpoint, and the certificate fetched over a
/// connection pinned by the plan's `thumbprint` (Forklift trusts `ca.crt` or `cacert`; it never reads a
/// thumbprint, and wavelift never writes `insecureSkipVerify`).
pub async fn source_conn(url: &str, thumbprint: &str) -> Result<SourceConn, String> {
    let ep =
        crate::source::http::Endpoint::parse(url).map_err(|e| format!("vCenter {url}: {e}"))?;
    let sha1 = crate::source::http::parse_thumbprint(thumbprint)
        .ok_or_else(|| format!("bad thumbprint `{thumbprint}`"))?;
    let der = crate::source::http::pinned_certificate(&ep, &sha1, Duration::from_secs(20))
        .await
        .map_err(|e| format!("vCenter {url} certificate: {e}"))?;
    Ok(SourceConn {
        url: SourceConn::sdk_url(url),
        ca_pem: fk::pem(&der),
    })
}

/// What Forklift preflight found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Blocking problems of the whole plan (CRDs, Provider, objects refused).
    pub global: Vec<String>,
    /// Per Forklift Plan: its verdict (absent under `--dry-run`).
    pub plans: BTreeMap<String, Verdict>,
    /// Whether Forklift validated the Plans (false under `--dry-run`, or when a global
    /// problem stopped before they were created).
    pub validation_ran: bool,
    pub notes: Vec<String>,
}

impl Report {
    /// The blocking problems of the Plan holding `vm`, by name.
    pub fn problems_of(&self, groups: &[PlanGroup], vm: &str) -> Vec<String> {
        let mut out = self.global.clone();
        for g in groups.iter().filter(|g| g.vms.iter().any(|v| v == vm)) {
            match self.plans.get(&g.name) {
                Some(Verdict::Blocked(p)) => {
                    out.extend(p.iter().map(|p| format!("Forklift Plan {}: {p}", g.name)))
                }
                Some(Verdict::Pending) => out.push(format!(
                    "Forklift Plan {}: Forklift did not validate it in time",
                    g.name
                )),
                _ => {}
            }
        }
        out
    }
}

/// The conditions Forklift sets on a map or Plan validated while a Provider it names was
/// not Ready yet (kubev2v/forklift `pkg/controller/validation/provider.go`); it validates
/// again when the Provider changes.
const PROVIDER_NOT_READY: &[&str] = &[
    "SourceProviderNotReady",
    "DestinationProviderNotReady",
    "ProviderNotReady",
];

/// `v`, except that once both Providers were seen Ready, a verdict blocked only by
/// [`PROVIDER_NOT_READY`] is a status from before that: not yet validated again.
fn settled(v: Verdict, providers_ready: bool) -> Verdict {
    match v {
        Verdict::Blocked(p)
            if providers_ready
                && p.iter().all(|c| {
                    PROVIDER_NOT_READY
                        .iter()
                        .any(|t| c.strip_prefix(t).is_some_and(|r| r.starts_with(':')))
                }) =>
        {
            Verdict::Pending
        }
        v => v,
    }
}

/// Waits until every named object of `kind` has a verdict other than Pending, at most
/// `timeout`, watching the plan's objects (one watch). Returns the verdicts. With
/// `providers_ready` (both Providers were seen Ready), a `…ProviderNotReady` verdict is
/// waited out ([`settled`]); one still standing at the timeout is reported as it reads.
pub async fn wait_verdicts(
    client: &Client,
    plan: &Plan,
    kind: &str,
    names: &[String],
    providers_ready: bool,
    timeout: Duration,
) -> BTreeMap<String, Verdict> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        plan.meta.namespace.as_str(),
        &resource(kind),
    );
    let mut out: BTreeMap<String, Verdict> = names
        .iter()
        .map(|n| (n.clone(), Verdict::Pending))
        .collect();
    let cfg = if kind == "Provider" {
        watcher::Config::default()
    } else {
        watcher::Config::default().labels(&labels::plan_selector(plan.meta.name.as_str()))
    };
    let mut stream = watcher(api, cfg).applied_objects().boxed();
    // The last `…ProviderNotReady` verdict of each object, reported if it never clears.
    let mut stale: BTreeMap<String, Verdict> = BTreeMap::new();
    let wait = async {
        while let Some(ev) = stream.next().await {
            let Ok(obj) = ev else { continue };
            let Some(name) = obj.metadata.name.clone() else {
                continue;
            };
            if let Some(slot) = out.get_mut(&name) {
                let v = verdict(&serde_json::to_value(&obj).unwrap_or(Value::Null));
                *slot = settled(v.clone(), providers_ready);
                if *slot == Verdict::Pending && v != Verdict::Pending {
                    stale.insert(name.clone(), v);
                } else {
                    stale.remove(&name);
                }
            }
            if out.values().all(|v| *v != Verdict::Pending) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, wait).await;
    for (name, v) in stale {
        if out.get(&name) == Some(&Verdict::Pending) {
            out.insert(name, v);
        }
    }
    out
}

/// Forklift preflight for a plan (see the module doc). `ids`: each VM's vSphere managed
/// object id, read from vCenter. Under `dry_run` the objects are only dry-run applied
/// (`dryRun=All`, still `fieldValidation=Strict`) and no Plan is created.
pub async fn preflight(
    client: &Client,
    plan: &Plan,
    source: Option<(&Credentials, &SourceConn)>,
    ids: &HashMap<String, String>,
    dry_run: bool,
    timeout: Duration,
) -> Report {
    preflight_wave(client, plan, None, source, ids, dry_run, timeout).await
}

/// [`preflight`] for the Plans of one wave (`None`: every wave): the engine's preflight of a
/// wave. The Providers and maps are the plan's.
pub async fn preflight_wave(
    client: &Client,
    plan: &Plan,
    wave: Option<&str>,
    source: Option<(&Credentials, &SourceConn)>,
    ids: &HashMap<String, String>,
    dry_run: bool,
    timeout: Duration,
) -> Report {
    let mut r = Report {
        global: crd_problems(client).await,
        ..Report::default()
    };
    if !r.global.is_empty() {
        return r;
    }
    let objects = match setup_objects(plan, source) {
        Ok(o) => o,
        Err(e) => {
            r.global.push(e);
            return r;
        }
    };
    for o in &objects {
        if let Err(e) = apply(client, o, dry_run).await {
            r.global.push(e);
        }
    }
    if !r.global.is_empty() {
        return r;
    }
    let groups: Vec<PlanGroup> = fk::plan_groups(plan)
        .into_iter()
        .filter(|g| wave.is_none_or(|w| g.wave == w))
        .collect();
    let mut plans = Vec::new();
    for g in &groups {
        match fk::forklift_plan(plan, g, &|n| ids.get(n).cloned()) {
            Ok(p) => plans.push(p),
            Err(e) => r.global.push(e.to_string()),
        }
    }
    if !r.global.is_empty() {
        return r;
    }
    if dry_run {
        for p in &plans {
            if let Err(e) = apply(client, p, true).await {
                r.global.push(e);
            }
        }
        r.notes.push(
            "--dry-run: the Forklift Plans were not created, so Forklift's own validation (VMNotFound, VMNetworksNotMapped, MacConflicts…) did not run; only their schema was checked (dryRun=All, fieldValidation=Strict)".into(),
        );
        return r;
    }
    // The Providers and maps first: a Plan validated before them carries transient
    // `…NotReady` conditions (Forklift re-validates it when they change).
    let waits: [(&str, Vec<String>); 3] = [
        (
            "Provider",
            vec![fk::source_provider_name(plan), fk::host_provider_name(plan)],
        ),
        (
            "NetworkMap",
            objects
                .iter()
                .filter(|o| o["kind"] == "NetworkMap")
                .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
                .collect(),
        ),
        ("StorageMap", vec![fk::storage_map_name(plan)]),
    ];
    for (kind, names) in waits {
        let providers_ready = kind != "Provider";
        for (name, v) in wait_verdicts(client, plan, kind, &names, providers_ready, timeout).await {
            match v {
                Verdict::Ready => {}
                Verdict::Blocked(p) => r
                    .global
                    .extend(p.iter().map(|p| format!("Forklift {kind} {name}: {p}"))),
                Verdict::Pending => r.global.push(format!(
                    "Forklift {kind} {name} is not Ready within {}s",
                    timeout.as_secs()
                )),
            }
        }
        if !r.global.is_empty() {
            return r;
        }
    }
    for p in &plans {
        if let Err(e) = apply(client, p, false).await {
            r.global.push(e);
        }
    }
    if !r.global.is_empty() {
        return r;
    }
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    r.plans = wait_verdicts(client, plan, "Plan", &names, true, timeout).await;
    r.validation_ran = true;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{Crds, ForkliftCrds};
    use serde_json::json;

    #[test]
    fn the_newest_schema_has_everything_an_older_plan_lacks_target_power_state() {
        let doc =
            crate::sim::openapi::document("forklift.konveyor.io", "v1beta1", &Crds::default())
                .expect("served");
        assert_eq!(schema_problems(&doc), Vec::<String>::new());
        let old = Crds {
            forklift: Some(ForkliftCrds {
                version: (2, 10, 3),
            }),
        };
        let doc =
            crate::sim::openapi::document("forklift.konveyor.io", "v1beta1", &old).expect("served");
        let p = schema_problems(&doc);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("targetPowerState") && p[0].contains("2.10.4"),
            "{p:?}"
        );
        assert_eq!(schema_problems(&json!({})).len(), 5);
    }

    #[test]
    fn verdicts_name_critical_conditions() {
        let ready = json!({ "status": { "conditions": [
            { "type": "Ready", "status": "True", "category": "Required" },
            { "type": "ConnectionInsecure", "status": "True", "category": "Warn" },
        ]}});
        assert_eq!(verdict(&ready), Verdict::Ready);
        assert_eq!(verdict(&json!({})), Verdict::Pending);
        let blocked = json!({ "status": { "conditions": [
            { "type": "VMNetworksNotMapped", "status": "True", "category": "Critical",
              "message": "VM has unmapped networks.", "items": ["id:vm-1001 name:'web'"] },
        ]}});
        assert_eq!(
            verdict(&blocked),
            Verdict::Blocked(vec![
                "VMNetworksNotMapped: VM has unmapped networks. [id:vm-1001 name:'web']".into()
            ])
        );
    }

    /// A map validated before its Providers were Ready is waited out once they are; any
    /// other blocking condition beside it still blocks.
    #[test]
    fn provider_not_ready_is_stale_once_the_providers_are_ready() {
        let stale = |extra: Option<&str>| {
            let mut conds = vec![
                json!({ "type": "DestinationProviderNotReady", "status": "True",
                "category": "Critical", "message": "The destination provider does not have a Ready condition." }),
            ];
            if let Some(t) = extra {
                conds.push(
                    json!({ "type": t, "status": "True", "category": "Critical", "message": "x" }),
                );
            }
            verdict(&json!({ "status": { "conditions": conds } }))
        };
        assert_eq!(settled(stale(None), true), Verdict::Pending);
        assert!(matches!(settled(stale(None), false), Verdict::Blocked(_)));
        assert!(matches!(
            settled(stale(Some("SourceNetworkNotValid")), true),
            Verdict::Blocked(_)
        ));
    }
}
