//! KubeVirt's `subresources.kubevirt.io/v1` actions on VirtualMachines (what `virtctl start`,
//! `stop`, `restart` and `migrate` call): raw PUTs, because their 202 answers have an empty
//! body that kube-rs's typed subresource calls would try to decode.
//!
//! Dry run travels in the BODY, as the options object's `dryRun: ["All"]`
//! (`StartOptions`, `StopOptions`, `RestartOptions`, `MigrateOptions` in kubevirt
//! `staging/src/kubevirt.io/api/core/v1/types.go`). virt-api reads only the body
//! (`pkg/virt-api/rest/lifecycle.go`: `decodeBody(request, bodyStruct)` and then
//! `metav1.PatchOptions{DryRun: bodyStruct.DryRun}`); the routes in `pkg/virt-api/api.go`
//! declare no `dryRun` query parameter, so `?dryRun=All` is ignored and the action really
//! happens.

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

/// The request path of an action (no query: options go in the body, see [`body`]).
pub fn path(namespace: &str, vm: &str, action: VmAction) -> String {
    format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{vm}/{}",
        action.as_str()
    )
}

/// The options object of an action: `{}`, or `{"dryRun":["All"]}` for a dry run.
pub fn body(dry_run: bool) -> Vec<u8> {
    if dry_run {
        br#"{"dryRun":["All"]}"#.to_vec()
    } else {
        b"{}".to_vec()
    }
}

/// `PUT …/virtualmachines/NAME/ACTION` with its options object (dry run in the body).
pub async fn put(
    client: &Client,
    namespace: &str,
    vm: &str,
    action: VmAction,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let req = http::Request::put(path(namespace, vm, action))
        .header("content-type", "application/json")
        .body(body(dry_run))
        .map_err(kube::Error::HttpError)?;
    client.request_text(req).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_no_dry_run_query() {
        assert_eq!(
            path("ns", "web", VmAction::Stop),
            "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/web/stop"
        );
        assert_eq!(VmAction::Migrate.as_str(), "migrate");
    }

    #[test]
    fn dry_run_is_in_the_options_body() {
        let v: serde_json::Value = serde_json::from_slice(&body(true)).expect("json");
        assert_eq!(v, serde_json::json!({"dryRun": ["All"]}));
        assert_eq!(body(false), b"{}");
    }
}
