//! KubeVirt's `subresources.kubevirt.io/v1` actions on VirtualMachines (what `virtctl start`,
//! `stop`, `restart` and `migrate` call): raw PUTs, because their 202 answers have an empty
//! body that kube-rs's typed subresource calls would try to decode.

use kube::Client;

/// A VM action of the KubeVirt subresource API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    Start,
    Stop,
    Restart,
    Migrate,
}

impl VmAction {
    pub fn as_str(self) -> &'static str {
        match self {
            VmAction::Start => "start",
            VmAction::Stop => "stop",
            VmAction::Restart => "restart",
            VmAction::Migrate => "migrate",
        }
    }
}

/// The request path of an action.
pub fn path(namespace: &str, vm: &str, action: VmAction, dry_run: bool) -> String {
    format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{vm}/{}{}",
        action.as_str(),
        if dry_run { "?dryRun=All" } else { "" }
    )
}

/// `PUT …/virtualmachines/NAME/ACTION` with an empty options object.
pub async fn put(
    client: &Client,
    namespace: &str,
    vm: &str,
    action: VmAction,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let req = http::Request::put(path(namespace, vm, action, dry_run))
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .map_err(kube::Error::HttpError)?;
    client.request_text(req).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path("ns", "web", VmAction::Stop, true),
            "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/web/stop?dryRun=All"
        );
        assert_eq!(VmAction::Migrate.as_str(), "migrate");
    }
}
