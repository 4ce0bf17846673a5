//! DataVolumes dry-run once per shape.
//!
//! Preflight dry-runs every object a VM needs before anything is created. For the
//! DataVolumes that cost one request per disk on top of the real create, and the answer
//! rarely differs between two VMs: CDI's validating webhook
//! (containerized-data-importer `pkg/apiserver/webhooks/datavolume-validate.go` `Admit`,
//! `validateDataVolumeSpec`; `pkg/apiserver/webhooks/util.go` `validateVDDKSource`,
//! `checkSourceURL`) judges a DataVolume by rules that look at each per-VM value only
//! through a few questions: is the name longer than 253 characters, is the VDDK `uuid` or
//! `backingFile` empty, is the http URL empty or not an `http`/`https`/`gs` URL, is the size
//! under 1 MiB. Everything else it looks at (source kind, secret, thumbprint, storage class,
//! access and volume modes, annotations) is the plan's, shared by every VM of a shape.
//!
//! So the shape of a DataVolume is the object with each per-VM value replaced by the
//! answers to those questions: two DataVolumes of one shape get one verdict from those
//! rules, and preflight dry-runs only the first of each shape. The webhook's one
//! per-object rule that reads the cluster, "Destination PVC … already exists" (a PVC of
//! the DataVolume's name that no DataVolume controls), is checked for every disk from one
//! list of the namespace's PVCs per run instead ([`super::Preflight`]'s foreign objects).
//!
//! What this gives up, and the README says so: an admission policy of the cluster's own
//! (Kyverno, Gatekeeper) that judges DataVolumes by their names or source paths sees only
//! each shape's first at preflight. The real create still passes through it; a refusal
//! then fails that VM by name, before its VirtualMachine exists. A failed dry run of a
//! shape is not taken as every VM's verdict: each VM of that shape then dry-runs its own.

use crate::cluster::resources::DataVolume;
use serde_json::{json, Value};

/// `kvalidation.DNS1123SubdomainMaxLength`, the limit `Admit` checks names against.
const NAME_MAX: usize = 253;
/// `units.MiB`: `validateStorageSize` refuses smaller disks.
const MIB: u64 = 1 << 20;

/// The shape of `dv` (see the module doc), as a string to compare.
pub fn shape(dv: &DataVolume) -> String {
    let mut v = serde_json::to_value(dv).unwrap_or(Value::Null);
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("labels");
        m.insert(
            "name".into(),
            json!(if name.len() > NAME_MAX { "long" } else { "ok" }),
        );
    }
    for key in ["/spec/source/vddk/uuid", "/spec/source/vddk/backingFile"] {
        if let Some(x) = v.pointer_mut(key) {
            let empty = x.as_str().is_none_or(str::is_empty);
            *x = json!(if empty { "" } else { "set" });
        }
    }
    if let Some(x) = v.pointer_mut("/spec/source/http/url") {
        *x = json!(url_class(x.as_str().unwrap_or_default()));
    }
    if let Some(x) = v.pointer_mut("/spec/storage/resources/requests/storage") {
        let bytes = x
            .as_str()
            .and_then(|q| crate::plan::quantity::Quantity::parse(q).ok())
            .map(|q| q.bytes);
        *x = json!(match bytes {
            Some(b) if b >= MIB => "ok".to_string(),
            _ => format!("{x}"),
        });
    }
    v.to_string()
}

/// What `validateSourceURL` can tell about a URL: empty, a scheme it refuses, or fine.
/// (`url.ParseRequestURI` failures land in "other": a distinct shape, so their own dry run.)
fn url_class(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    match url.split_once("://") {
        Some((scheme, rest)) if matches!(scheme, "http" | "https" | "gs") && !rest.is_empty() => {
            "ok".into()
        }
        _ => format!("other:{url}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dv(name: &str, uuid: &str, file: &str, size: &str) -> DataVolume {
        serde_json::from_value(json!({
            "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": { "name": name, "namespace": "mig", "labels": { "wavelift.io/vm": name } },
            "spec": {
                "source": { "vddk": { "url": "https://vc", "uuid": uuid, "backingFile": file,
                                      "thumbprint": "AA", "secretRef": "s" } },
                "storage": { "storageClassName": "fast",
                             "resources": { "requests": { "storage": size } } }
            }
        }))
        .expect("dv")
    }

    #[test]
    fn per_vm_values_share_a_shape_while_what_the_webhook_refuses_does_not() {
        let a = shape(&dv("a-disk0", "u1", "[ds] a/a.vmdk", "10Gi"));
        assert_eq!(a, shape(&dv("bb-disk0", "u2", "[ds] b/b.vmdk", "20Gi")));
        // Each value the webhook refuses makes a shape of its own.
        assert_ne!(
            a,
            shape(&dv(&"x".repeat(254), "u1", "[ds] a/a.vmdk", "10Gi"))
        );
        assert_ne!(a, shape(&dv("a-disk0", "", "[ds] a/a.vmdk", "10Gi")));
        assert_ne!(a, shape(&dv("a-disk0", "u1", "", "10Gi")));
        assert_ne!(a, shape(&dv("a-disk0", "u1", "[ds] a/a.vmdk", "512Ki")));
        // A plan-wide value is part of the shape.
        let mut other_class = dv("a-disk0", "u1", "[ds] a/a.vmdk", "10Gi");
        other_class.spec.storage["storageClassName"] = json!("slow");
        assert_ne!(a, shape(&other_class));
    }

    #[test]
    fn http_urls_are_judged_as_validate_source_url_does() {
        assert_eq!(url_class("https://images.example/a.qcow2"), "ok");
        assert_eq!(url_class("gs://bucket/b.img"), "ok");
        assert_eq!(url_class(""), "");
        assert_ne!(url_class("ftp://x/a"), "ok");
        assert_ne!(url_class("not a url"), "ok");
    }
}
