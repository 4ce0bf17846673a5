//! Validation of objects on create and update (what a real API server plus the KubeVirt,
//! CDI and Multus admission webhooks would reject), answered as 422 Invalid with causes.

use serde_json::Value;

use super::resources::ResourceDef;
use super::status::Cause;

/// DNS-1123 label: at most 63 lower-case alphanumerics or '-', alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A Kubernetes quantity (`40Gi`, `500m`, `1.5`, `1e3`).
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return false;
    }
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        e => {
            let exp = e.strip_prefix(['e', 'E']).unwrap_or("");
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// A MAC address `00:50:56:aa:bb:cc` (or with `-`).
pub fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Validate the object's metadata (name, labels, annotations).
pub fn validate_metadata(res: &ResourceDef, obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::required("metadata.name"));
    } else {
        let label_only = matches!(
            res.kind,
            "Namespace" | "VirtualMachine" | "VirtualMachineInstance"
        );
        let ok = if label_only {
            is_dns1123_label(name)
        } else {
            is_dns1123_subdomain(name)
        };
        if !ok {
            let what = if label_only {
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
            } else {
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            };
            causes.push(Cause::invalid(
                "metadata.name",
                format!("Invalid value: {name:?}: {what}"),
            ));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(m) => {
                for (k, v) in m {
                    if !is_qualified_name(k) {
                        causes.push(Cause::invalid(
                            "metadata.labels",
                            format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.'"),
                        ));
                    }
                    match v.as_str() {
                        Some(s) if is_label_value(s) => {}
                        _ => causes.push(Cause::invalid(
                            "metadata.labels",
                            format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.' (at most 63)"),
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(Cause::invalid("metadata.labels", "must be a map")),
        }
    }
    if let Some(ann) = obj.pointer("/metadata/annotations") {
        if let Some(m) = ann.as_object() {
            for (k, v) in m {
                if !is_qualified_name(k) {
                    causes.push(Cause::invalid(
                        "metadata.annotations",
                        format!("Invalid value: {k:?}: not a qualified name"),
                    ));
                }
                if !v.is_string() {
                    causes.push(Cause::invalid(
                        format!("metadata.annotations.{k}"),
                        "must be a string",
                    ));
                }
            }
            // apimachinery pkg/api/validation/objectmeta.go `ValidateAnnotationsSize`: keys
            // and values together at most `TotalAnnotationSizeLimitB`.
            let total: usize = m
                .iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum();
            if total > TOTAL_ANNOTATION_SIZE_LIMIT {
                causes.push(Cause::too_long(
                    "metadata.annotations",
                    TOTAL_ANNOTATION_SIZE_LIMIT,
                ));
            }
        } else if !ann.is_null() {
            causes.push(Cause::invalid("metadata.annotations", "must be a map"));
        }
    }
}

/// The most bytes an object's annotations (keys and values) may take: apimachinery
/// pkg/api/validation/objectmeta.go `TotalAnnotationSizeLimitB` (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The most bytes a Secret's data may take: kubernetes pkg/apis/core/types.go
/// `MaxSecretSize` (1 MiB), checked by pkg/apis/core/validation/validation.go
/// `ValidateSecret`.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// Validate an object of a kind (metadata plus kind-specific rules); empty means valid.
pub fn validate(res: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_metadata(res, obj, &mut causes);
    // A custom resource is checked against its CRD's structural schema first; the
    // kind's own rules (the webhooks') assume the types are right.
    if !res.builtin {
        let wrong = super::schema::type_errors(&super::kind_schema::for_kind(res), obj);
        if !wrong.is_empty() {
            causes.extend(wrong);
            return causes;
        }
    }
    let spec = obj.get("spec");
    match res.kind {
        "VirtualMachine" => validate_vm(spec, &mut causes),
        "VirtualMachineInstance" => match spec {
            Some(s) => validate_vmi_spec(s, "spec", &mut causes),
            None => causes.push(Cause::required("spec")),
        },
        "VirtualMachineInstanceMigration" if str_at(spec, "vmiName").is_none() => {
            causes.push(Cause::required("spec.vmiName"));
        }
        "DataVolume" => match spec {
            Some(s) => validate_dv_spec(s, "spec", &mut causes),
            None => causes.push(Cause::required("spec")),
        },
        "NetworkAttachmentDefinition" => validate_nad(spec, &mut causes),
        "NetworkPolicy" => validate_network_policy(spec, &mut causes),
        "MultiNetworkPolicy" => validate_multi_network_policy(spec, &mut causes),
        "PersistentVolumeClaim" => match spec {
            Some(s) => validate_pvc_spec(s, "spec", &mut causes),
            None => causes.push(Cause::required("spec")),
        },
        "StorageClass"
            if obj
                .get("provisioner")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty() =>
        {
            causes.push(Cause::required("provisioner"));
        }
        "Secret" => validate_secret(obj, &mut causes),
        "ConfigMap" => validate_config_map(obj, &mut causes),
        "Lease" => validate_lease(spec, &mut causes),
        "Pod" => validate_pod_spec(spec, &mut causes),
        "Event" => validate_event(obj, &mut causes),
        _ if res.group == super::resources::FORKLIFT_GROUP => {
            causes.extend(super::forklift_crd::validate(res, obj));
        }
        _ => {}
    }
    causes
}

/// kubernetes pkg/apis/networking/validation/validation.go `ValidateNetworkPolicySpec` (ports,
/// peers, ipBlock CIDRs and `except`, `endPort`, policyTypes), as [`crate::policy::eval::validate`]
/// implements it. The spec's types were checked when it was decoded
/// ([`super::defaults::decode`]).
fn validate_network_policy(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec: k8s_openapi::api::networking::v1::NetworkPolicySpec = match spec {
        None | Some(Value::Null) => Default::default(),
        Some(s) => match serde_json::from_value(s.clone()) {
            Ok(s) => s,
            Err(e) => {
                causes.push(Cause::invalid("spec", format!("Invalid value: {e}")));
                return;
            }
        },
    };
    for p in crate::policy::eval::validate(&spec) {
        causes.push(Cause {
            field: p.field,
            reason: p.reason.to_string(),
            message: p.message,
        });
    }
}

/// The multi-networkpolicy CRD's OpenAPI validation beyond types (k8snetworkplumbingwg/
/// multi-networkpolicy scheme.yml): `spec.podSelector`, `ipBlock.cidr` and each
/// `matchExpressions[]`'s `key` and `operator` are required. The CRD has no further rules
/// and no admission webhook checks a MultiNetworkPolicy, so a real API server takes a bad
/// CIDR or `endPort` < `port` here, and so does the sim (the network then matches no
/// address by that CIDR; `wavelift policy test` refuses such a policy).
fn validate_multi_network_policy(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| !s.is_null()) else {
        return;
    };
    if spec.get("podSelector").is_none_or(Value::is_null) {
        causes.push(Cause::required("spec.podSelector"));
    }
    let selector = |sel: Option<&Value>, at: &str, causes: &mut Vec<Cause>| {
        let exprs = sel
            .and_then(|s| s.get("matchExpressions"))
            .and_then(Value::as_array);
        for (i, e) in exprs.into_iter().flatten().enumerate() {
            for k in ["key", "operator"] {
                if e.get(k).is_none_or(Value::is_null) {
                    causes.push(Cause::required(format!("{at}.matchExpressions[{i}].{k}")));
                }
            }
        }
    };
    selector(spec.get("podSelector"), "spec.podSelector", causes);
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        let rules = spec.get(dir).and_then(Value::as_array);
        for (i, r) in rules.into_iter().flatten().enumerate() {
            let list = r.get(peers).and_then(Value::as_array);
            for (j, p) in list.into_iter().flatten().enumerate() {
                let at = format!("spec.{dir}[{i}].{peers}[{j}]");
                if let Some(b) = p.get("ipBlock").filter(|b| !b.is_null()) {
                    if b.get("cidr").is_none_or(Value::is_null) {
                        causes.push(Cause::required(format!("{at}.ipBlock.cidr")));
                    }
                }
                selector(p.get("podSelector"), &format!("{at}.podSelector"), causes);
                selector(
                    p.get("namespaceSelector"),
                    &format!("{at}.namespaceSelector"),
                    causes,
                );
            }
        }
    }
}

/// kubernetes pkg/apis/core/validation/validation.go `ValidateConfigMap`: keys are config
/// keys (apimachinery `IsConfigMapKey`), no key in both `data` and `binaryData`, at most
/// 1 MiB of values.
fn validate_config_map(obj: &Value, causes: &mut Vec<Cause>) {
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0;
    for (bag, mine, other, other_name) in [
        ("data", data, binary, "binaryData"),
        ("binaryData", binary, data, "data"),
    ] {
        for (k, v) in mine.into_iter().flatten() {
            if !is_config_key(k) {
                causes.push(Cause::invalid(
                    format!("{bag}[{k}]"),
                    format!("Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
                ));
            }
            if other.is_some_and(|o| o.contains_key(k)) {
                causes.push(Cause::invalid(
                    format!("{bag}[{k}]"),
                    format!("Invalid value: {k:?}: duplicate of key present in {other_name}"),
                ));
            }
            match v.as_str() {
                Some(s) => total += s.len(),
                None => causes.push(Cause::invalid(format!("{bag}[{k}]"), "must be a string")),
            }
        }
    }
    const MAX: usize = 1024 * 1024;
    if total > MAX {
        causes.push(Cause {
            field: String::new(),
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: may not be more than {MAX} bytes"),
        });
    }
}

/// apimachinery pkg/util/validation `IsConfigMapKey`.
fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && k != "."
        && k != ".."
        && !k.starts_with("..")
}

/// kubernetes pkg/apis/coordination/validation/validation.go `ValidateLeaseSpec`.
fn validate_lease(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let int = |k: &str| spec.and_then(|s| s.get(k)).and_then(Value::as_i64);
    if let Some(d) = int("leaseDurationSeconds").filter(|d| *d <= 0) {
        causes.push(Cause::invalid(
            "spec.leaseDurationSeconds",
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = int("leaseTransitions").filter(|t| *t < 0) {
        causes.push(Cause::invalid(
            "spec.leaseTransitions",
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    if str_at(spec, "preferredHolder").is_some() && str_at(spec, "strategy").is_none() {
        causes.push(Cause {
            field: "spec.preferredHolder".into(),
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: may only be specified if `strategy` is defined".into(),
        });
    }
}

/// The parts of kubernetes pkg/apis/core/validation/validation.go `ValidatePodSpec` a
/// hand-written pod gets wrong first: containers present, each named (a DNS label, unique)
/// and with an image.
fn validate_pod_spec(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push(Cause::required("spec.containers"));
        return;
    };
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let p = format!("spec.containers[{i}]");
        match str_at(Some(c), "name") {
            None => causes.push(Cause::required(format!("{p}.name"))),
            Some(n) if !is_dns1123_label(n) => causes.push(Cause::invalid(
                format!("{p}.name"),
                format!("Invalid value: {n:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
            )),
            Some(n) if seen.contains(&n) => causes.push(Cause::duplicate(
                format!("{p}.name"),
                format!("Duplicate value: {n:?}"),
            )),
            Some(n) => seen.push(n),
        }
        if str_at(Some(c), "image").is_none() {
            causes.push(Cause::required(format!("{p}.image")));
        }
    }
}

/// kubernetes pkg/apis/core/validation/events.go `legacyValidateEvent`: a core/v1 Event
/// about a namespaced object lives in that object's namespace.
fn validate_event(obj: &Value, causes: &mut Vec<Cause>) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(ins) = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        if ins != ns {
            causes.push(Cause::invalid(
                "involvedObject.namespace",
                format!("Invalid value: {ins:?}: does not match event.namespace"),
            ));
        }
    }
}

fn str_at<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn validate_secret(obj: &Value, causes: &mut Vec<Cause>) {
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in data {
            let ok = v.as_str().is_some_and(is_base64);
            if !ok {
                causes.push(Cause::invalid(
                    format!("data[{k}]"),
                    "must be a base64-encoded string",
                ));
            }
            // The decoded value's length.
            let text = v.as_str().unwrap_or_default();
            total +=
                (text.len() / 4 * 3).saturating_sub(text.len() - text.trim_end_matches('=').len());
        }
        if total > MAX_SECRET_SIZE {
            causes.push(Cause::too_long("data", MAX_SECRET_SIZE));
        }
    }
}

/// A Secret's `data` value decodes as Go's `encoding/json` decodes a `[]byte`
/// (`base64.StdEncoding`).
fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    crate::sim::go_base64::STD.decode(s).is_ok()
}

const RUN_STRATEGIES: &[&str] = &[
    "Always",
    "Halted",
    "Manual",
    "RerunOnFailure",
    "Once",
    "WaitAsReceiver",
];

fn validate_vm(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        causes.push(Cause::required("spec"));
        return;
    };
    if let Some(rs) = spec.get("runStrategy") {
        match rs.as_str() {
            Some(s) if RUN_STRATEGIES.contains(&s) => {}
            _ => causes.push(Cause::not_supported(
                "spec.runStrategy",
                format!(
                    "Unsupported value: {rs}: supported values: {}",
                    RUN_STRATEGIES.join(", ")
                ),
            )),
        }
        if spec.get("running").is_some_and(|r| !r.is_null()) {
            causes.push(Cause::invalid(
                "spec.running",
                "Running and RunStrategy are mutually exclusive",
            ));
        }
    }
    match spec.get("template") {
        None | Some(Value::Null) => causes.push(Cause::required("spec.template")),
        Some(t) => match t.get("spec") {
            None | Some(Value::Null) => causes.push(Cause::required("spec.template.spec")),
            Some(s) => validate_vmi_spec(s, "spec.template.spec", causes),
        },
    }
    if let Some(dvts) = spec.get("dataVolumeTemplates").and_then(Value::as_array) {
        for (i, dvt) in dvts.iter().enumerate() {
            let p = format!("spec.dataVolumeTemplates[{i}]");
            match dvt.pointer("/metadata/name").and_then(Value::as_str) {
                Some(n) if is_dns1123_subdomain(n) => {}
                Some(n) => causes.push(Cause::invalid(
                    format!("{p}.metadata.name"),
                    format!("Invalid value: {n:?}: not a DNS-1123 subdomain"),
                )),
                None => causes.push(Cause::required(format!("{p}.metadata.name"))),
            }
            match dvt.get("spec") {
                Some(s) => validate_dv_spec(s, &format!("{p}.spec"), causes),
                None => causes.push(Cause::required(format!("{p}.spec"))),
            }
        }
    }
}

const BINDINGS: &[&str] = &[
    "bridge",
    "masquerade",
    "sriov",
    "slirp",
    "macvtap",
    "passt",
    "passtBinding",
    "binding",
];

fn names_of(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn validate_vmi_spec(spec: &Value, p: &str, causes: &mut Vec<Cause>) {
    let Some(domain) = spec.get("domain").filter(|d| !d.is_null()) else {
        causes.push(Cause::required(format!("{p}.domain")));
        return;
    };
    let networks = spec.get("networks");
    let network_names = names_of(networks);
    let interfaces = domain.pointer("/devices/interfaces");
    let interface_names = names_of(interfaces);
    if let Some(ifaces) = interfaces.and_then(Value::as_array) {
        let mut seen = Vec::new();
        for (i, iface) in ifaces.iter().enumerate() {
            let ip = format!("{p}.domain.devices.interfaces[{i}]");
            match iface
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                None => causes.push(Cause::required(format!("{ip}.name"))),
                Some(n) => {
                    if seen.contains(&n) {
                        causes.push(Cause::duplicate(
                            format!("{ip}.name"),
                            format!("Duplicate value: {n:?}"),
                        ));
                    }
                    seen.push(n);
                    if !network_names.iter().any(|x| x == n) {
                        causes.push(Cause::not_found(
                            format!("{ip}.name"),
                            format!("Not found: {n:?}: no network of that name in {p}.networks"),
                        ));
                    }
                }
            }
            let set: Vec<&str> = BINDINGS
                .iter()
                .copied()
                .filter(|b| iface.get(*b).is_some_and(|v| !v.is_null()))
                .collect();
            if set.len() > 1 {
                causes.push(Cause::invalid(
                    ip.clone(),
                    format!(
                        "Only one binding method may be set on an interface, found: {}",
                        set.join(", ")
                    ),
                ));
            }
            if let Some(mac) = iface.get("macAddress") {
                if !mac.as_str().is_some_and(is_mac) {
                    causes.push(Cause::invalid(
                        format!("{ip}.macAddress"),
                        format!(
                            "Invalid value: {mac}: must be a MAC address like 00:50:56:aa:bb:cc"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(nets) = networks.and_then(Value::as_array) {
        let mut seen = Vec::new();
        for (i, net) in nets.iter().enumerate() {
            let np = format!("{p}.networks[{i}]");
            match net
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                None => causes.push(Cause::required(format!("{np}.name"))),
                Some(n) => {
                    if seen.contains(&n) {
                        causes.push(Cause::duplicate(
                            format!("{np}.name"),
                            format!("Duplicate value: {n:?}"),
                        ));
                    }
                    seen.push(n);
                    if !interface_names.iter().any(|x| x == n) {
                        causes.push(Cause::not_found(
                            format!("{np}.name"),
                            format!("Not found: {n:?}: every network needs an interface of the same name"),
                        ));
                    }
                }
            }
            let kinds: Vec<&str> = ["pod", "multus", "resourceClaim"]
                .into_iter()
                .filter(|k| net.get(*k).is_some_and(|v| !v.is_null()))
                .collect();
            match kinds.len() {
                0 => causes.push(Cause::required(format!("{np}.multus"))),
                1 => {}
                _ => causes.push(Cause::invalid(
                    np.clone(),
                    format!(
                        "Only one network source may be set, found: {}",
                        kinds.join(", ")
                    ),
                )),
            }
            if let Some(m) = net.get("multus").filter(|v| !v.is_null()) {
                if str_at(Some(m), "networkName").is_none() {
                    causes.push(Cause::required(format!("{np}.multus.networkName")));
                }
            }
        }
    }
    let volumes = spec.get("volumes");
    let volume_names = names_of(volumes);
    if let Some(disks) = domain.pointer("/devices/disks").and_then(Value::as_array) {
        for (i, d) in disks.iter().enumerate() {
            let dp = format!("{p}.domain.devices.disks[{i}].name");
            match d.get("name").and_then(Value::as_str) {
                None => causes.push(Cause::required(dp)),
                Some(n) if !volume_names.iter().any(|v| v == n) => causes.push(Cause::not_found(
                    dp,
                    format!("Not found: {n:?}: no volume of that name in {p}.volumes"),
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(vols) = volumes.and_then(Value::as_array) {
        for (i, v) in vols.iter().enumerate() {
            let vp = format!("{p}.volumes[{i}]");
            if str_at(Some(v), "name").is_none() {
                causes.push(Cause::required(format!("{vp}.name")));
            }
            if let Some(dv) = v.get("dataVolume") {
                if str_at(Some(dv), "name").is_none() {
                    causes.push(Cause::required(format!("{vp}.dataVolume.name")));
                }
            }
        }
    }
}

const DV_SOURCES: &[&str] = &[
    "http", "s3", "gcs", "registry", "pvc", "snapshot", "upload", "blank", "imageio", "vddk",
];

fn validate_dv_spec(spec: &Value, p: &str, causes: &mut Vec<Cause>) {
    let source = spec.get("source").filter(|s| !s.is_null());
    let source_ref = spec.get("sourceRef").filter(|s| !s.is_null());
    let mut source_kind = None;
    match (source, source_ref) {
        (None, None) => causes.push(Cause::required(format!("{p}.source"))),
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            format!("{p}.sourceRef"),
            "source and sourceRef are mutually exclusive",
        )),
        (Some(src), None) => {
            let kinds: Vec<&str> = DV_SOURCES
                .iter()
                .copied()
                .filter(|k| src.get(*k).is_some_and(|v| !v.is_null()))
                .collect();
            match kinds.as_slice() {
                [] => causes.push(Cause::required(format!(
                    "{p}.source: one of {}",
                    DV_SOURCES.join(", ")
                ))),
                [k] => {
                    source_kind = Some(*k);
                    let s = src.get(*k);
                    let required: &[&str] = match *k {
                        "http" | "s3" | "gcs" | "registry" => &["url"],
                        // Every VDDK field is `omitempty` (containerized-data-importer
                        // `staging/.../core/v1beta1/types.go` `DataVolumeSourceVDDK`): the
                        // CRD requires none; CDI's webhook refuses an empty one
                        // (`crate::sim::admission`).
                        "vddk" => &[],
                        "pvc" => &["namespace", "name"],
                        "imageio" => &["url", "diskId"],
                        _ => &[],
                    };
                    for f in required {
                        if str_at(s, f).is_none() {
                            causes.push(Cause::required(format!("{p}.source.{k}.{f}")));
                        }
                    }
                }
                many => causes.push(Cause::invalid(
                    format!("{p}.source"),
                    format!("Only one source may be set, found: {}", many.join(", ")),
                )),
            }
        }
        (None, Some(_)) => source_kind = Some("sourceRef"),
    }
    let pvc = spec.get("pvc").filter(|s| !s.is_null());
    let storage = spec.get("storage").filter(|s| !s.is_null());
    match (pvc, storage) {
        (None, None) => causes.push(Cause::required(format!("{p}.storage"))),
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            format!("{p}.pvc"),
            "pvc and storage are mutually exclusive",
        )),
        (Some(pvc), None) => validate_pvc_spec(pvc, &format!("{p}.pvc"), causes),
        (None, Some(st)) => {
            let size = st.pointer("/resources/requests/storage");
            let clone = matches!(source_kind, Some("pvc" | "snapshot" | "sourceRef"));
            match size {
                None if !clone => causes.push(Cause::required(format!(
                    "{p}.storage.resources.requests.storage"
                ))),
                Some(q) if !quantity_value(q) => causes.push(Cause::invalid(
                    format!("{p}.storage.resources.requests.storage"),
                    format!("Invalid value: {q}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                )),
                _ => {}
            }
        }
    }
}

fn quantity_value(v: &Value) -> bool {
    match v {
        Value::String(s) => is_quantity(s),
        Value::Number(_) => true,
        _ => false,
    }
}

fn validate_pvc_spec(spec: &Value, p: &str, causes: &mut Vec<Cause>) {
    let modes = spec.get("accessModes").and_then(Value::as_array);
    if modes.is_none_or(|m| m.is_empty()) {
        causes.push(Cause::required(format!("{p}.accessModes")));
    }
    match spec.pointer("/resources/requests/storage") {
        None => causes.push(Cause::required(format!("{p}.resources.requests.storage"))),
        Some(q) if !quantity_value(q) => causes.push(Cause::invalid(
            format!("{p}.resources.requests.storage"),
            format!("Invalid value: {q}: not a quantity"),
        )),
        Some(_) => {}
    }
}

fn validate_nad(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(config) = spec.and_then(|s| s.get("config")) else {
        // Multus accepts a NAD without config (it then reads a file on the node).
        return;
    };
    let Some(text) = config.as_str() else {
        causes.push(Cause::invalid(
            "spec.config",
            "must be a string holding CNI JSON",
        ));
        return;
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => {
            if !m.contains_key("type") && !m.contains_key("plugins") {
                causes.push(Cause::invalid(
                    "spec.config",
                    "CNI config must have a \"type\" or a \"plugins\" list",
                ));
            }
        }
        Ok(_) => causes.push(Cause::invalid(
            "spec.config",
            "CNI config must be a JSON object",
        )),
        Err(e) => causes.push(Cause::invalid(
            "spec.config",
            format!("invalid CNI JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quantities() {
        assert!(is_dns1123_label("web-01"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-a"));
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(is_quantity("40Gi"));
        assert!(is_quantity("1.5"));
        assert!(is_quantity("1e3"));
        assert!(!is_quantity("forty"));
        assert!(!is_quantity("40GB"));
        assert!(is_mac("00:50:56:aa:bb:cc"));
        assert!(!is_mac("00:50:56:aa:bb"));
    }
}
