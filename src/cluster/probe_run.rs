//! Running one probe pod (issue 14): create it ([`create`]; an existing one of the same name —
//! a run killed while it ran — is reused), wait ([`finish`]) on a watch of that one pod until the kubelet
//! ends it, read the result from the termination message (never from logs), delete it.
//!
//! What a pod's end means:
//! - `Succeeded`: `state.terminated.message` is `wavelift probe`'s result
//!   ([`crate::checks::probe::pod::decode`]);
//! - `Failed` while the container never started (`ContainerCreating` until the deadline,
//!   kubelet `DeadlineExceeded`): the pod could not be attached on its node — for a
//!   bridge network, the bridge is missing there ([`PodEnd::NotStarted`]);
//! - any other `Failed`: the program failed ([`PodEnd::Failed`]).

use super::call::call;
use crate::checks::probe::pod::{decode, PodResult};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::Client;
use std::time::Duration;

/// How a probe pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEnd {
    /// The program ran; its result.
    Result(PodResult),
    /// The container never started (the reason and message the kubelet gave).
    NotStarted(String),
    /// The pod failed otherwise, or its result could not be read.
    Failed(String),
}

/// Creates `pod`: `Ok(true)` created, `Ok(false)` one of that name exists already (a run
/// killed while it ran: its result serves). `Err`: the API refused it.
pub async fn create(client: &Client, pod: &Pod) -> Result<bool, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    match call(&format!("create Pod {name}"), || api.create(&pp, pod)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(format!("create Pod {name}: {}", message(&e))),
    }
}

/// Waits at most `wait` for pod `ns/name` to end, reads its result and deletes it. `Err`:
/// the API never showed its end (the text says why).
pub async fn finish(
    client: &Client,
    ns: &str,
    name: &str,
    wait: Duration,
) -> Result<PodEnd, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let ended = tokio::time::timeout(wait, await_condition(api.clone(), name, ended)).await;
    let end = match ended {
        Ok(Ok(Some(p))) => read_end(&p),
        Ok(Ok(None)) => Err(format!("Pod {name} was deleted before it ended")),
        Ok(Err(e)) => Err(format!("watch Pod {name}: {e}")),
        Err(_) => Err(format!("Pod {name} did not end within {}s", wait.as_secs())),
    };
    delete(&api, name).await;
    end
}

/// Waits at most `wait` for pod `ns/name` to run (`Err`: it ended, went away or never ran).
pub async fn running(client: &Client, ns: &str, name: &str, wait: Duration) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let cond = |p: Option<&Pod>| {
        p.is_none_or(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Running" | "Succeeded" | "Failed")
            )
        })
    };
    match tokio::time::timeout(wait, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(p)))
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") =>
        {
            Ok(())
        }
        Ok(Ok(Some(p))) => {
            let end = read_end(&p);
            delete(&api, name).await;
            Err(format!("Pod {name} ended before it ran: {end:?}"))
        }
        Ok(Ok(None)) => Err(format!("Pod {name} was deleted before it ran")),
        Ok(Err(e)) => Err(format!("watch Pod {name}: {e}")),
        Err(_) => {
            delete(&api, name).await;
            Err(format!("Pod {name} did not run within {}s", wait.as_secs()))
        }
    }
}

/// Stops a running pod the way a deletion does: deleted with a grace period of `grace`, the
/// kubelet sends SIGTERM, the program writes its result, the kubelet records the container's
/// end (with the termination message) and only then removes the pod
/// (`pkg/kubelet/status/status_manager.go`: the final status is written before the delete).
/// The result is read from that last status.
pub async fn stop(
    client: &Client,
    ns: &str,
    name: &str,
    grace: Duration,
    wait: Duration,
) -> Result<PodEnd, String> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // The watch is established (its list came back) before the delete, so the terminated
    // status is not missed however late this task runs; a DELETED event carries the pod's
    // last state too.
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), cfg).boxed();
    let ours = |p: &Pod| p.metadata.name.as_deref() == Some(name);
    let established = tokio::time::timeout(wait, async {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("watch Pod {name}: {e}")),
            }
        }
        Err(format!("watch Pod {name}: the watch ended"))
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "watch Pod {name}: no list within {}s",
            wait.as_secs()
        ))
    });
    established?;
    let dp = DeleteParams {
        grace_period_seconds: Some(grace.as_secs() as u32),
        ..Default::default()
    };
    if let Err(e) = call(&format!("delete Pod {name}"), || api.delete(name, &dp)).await {
        return Err(format!("delete Pod {name}: {}", message(&e)));
    }
    let seen = tokio::time::timeout(wait, async {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))
                    if ours(&p) && terminated(&p) =>
                {
                    return read_end(&p);
                }
                Ok(watcher::Event::Delete(p)) if ours(&p) => {
                    return if terminated(&p) {
                        read_end(&p)
                    } else {
                        Err(format!("Pod {name} went away before its result was seen"))
                    };
                }
                Ok(_) => {}
                Err(e) => return Err(format!("watch Pod {name}: {e}")),
            }
        }
        Err(format!("watch Pod {name}: the watch ended"))
    })
    .await;
    let end = seen.unwrap_or_else(|_| {
        Err(format!(
            "Pod {name} did not stop within {}s",
            wait.as_secs()
        ))
    });
    delete(&api, name).await;
    end
}

/// The pod's container has ended (its status carries how).
fn terminated(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some())
}

/// Deletes pod `name` (gone already is fine; a failure is logged: the run's end sweeps).
async fn delete(api: &Api<Pod>, name: &str) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    match call(&format!("delete Pod {name}"), || api.delete(name, &dp)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(pod = name, error = %e, "probe pod not deleted"),
    }
}

/// Deletes every probe pod of the plan (`selector`: its labels): a resumed run's leftovers
/// and the end of a run. Returns how many there were.
pub async fn sweep(client: &Client, ns: &str, selector: &str) -> Result<usize, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(selector);
    let pods = call("list probe Pods", || api.list(&lp))
        .await
        .map_err(|e| format!("list probe Pods: {}", message(&e)))?;
    for p in &pods.items {
        if let Some(n) = &p.metadata.name {
            delete(&api, n).await;
        }
    }
    Ok(pods.items.len())
}

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        e => e.to_string(),
    }
}

/// The pod ended (or is gone).
fn ended(p: Option<&Pod>) -> bool {
    p.is_none_or(|p| {
        matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    })
}

fn read_end(p: &Pod) -> Result<PodEnd, String> {
    let status = p.status.clone().unwrap_or_default();
    // A stopped pod (graceful deletion) whose container ended with a result: its phase may
    // still read Running in the status that carries it.
    let exit = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    let status = match (&status.phase, exit) {
        (Some(ph), Some(code)) if ph == "Running" => k8s_openapi::api::core::v1::PodStatus {
            phase: Some(if code == 0 { "Succeeded" } else { "Failed" }.into()),
            ..status
        },
        _ => status,
    };
    let cs = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.first().cloned());
    let terminated = cs
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone());
    let waiting = cs
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.clone());
    match (status.phase.as_deref(), terminated) {
        (Some("Succeeded"), Some(t)) => Ok(match decode(t.message.as_deref().unwrap_or("")) {
            Ok(r) => PodEnd::Result(r),
            Err(e) => PodEnd::Failed(e),
        }),
        (Some("Failed"), Some(t)) => Ok(PodEnd::Failed(format!(
            "the probe exited {}{}",
            t.exit_code,
            t.message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map_or(String::new(), |m| format!(": {m}"))
        ))),
        (Some("Failed"), None) => {
            let why = [
                status.reason.clone(),
                waiting.as_ref().and_then(|w| w.reason.clone()),
                waiting.as_ref().and_then(|w| w.message.clone()),
                status.message.clone(),
            ];
            let why: Vec<String> = why.into_iter().flatten().collect();
            Ok(PodEnd::NotStarted(if why.is_empty() {
                "the pod failed before its container started".into()
            } else {
                why.join(": ")
            }))
        }
        (phase, _) => Ok(PodEnd::Failed(format!(
            "the pod ended {} without a result",
            phase.unwrap_or("in no phase")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "n" },
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn a_pod_end_reads_as_result_not_started_or_failed() {
        let ok = pod(json!({ "phase": "Succeeded", "containerStatuses": [{
            "name": "probe", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "terminated": { "exitCode": 0, "reason": "Completed",
                "message": "{\"v\":1,\"r\":[{\"k\":\"arp\",\"t\":\"192.0.2.15\",\"m\":[\"00:50:56:ab:cd:01\"]}]}" } } }] }));
        match read_end(&ok) {
            Ok(PodEnd::Result(r)) => assert_eq!(r.r[0].m, vec!["00:50:56:ab:cd:01"]),
            other => panic!("{other:?}"),
        }
        let stuck = pod(json!({ "phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
            "containerStatuses": [{ "name": "probe", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }] }));
        match read_end(&stuck) {
            Ok(PodEnd::NotStarted(why)) => {
                assert!(
                    why.contains("DeadlineExceeded") && why.contains("ContainerCreating"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        let bad = pod(
            json!({ "phase": "Failed", "containerStatuses": [{ "name": "probe",
            "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "terminated": { "exitCode": 2, "message": "unknown argument" } } }] }),
        );
        assert_eq!(
            read_end(&bad),
            Ok(PodEnd::Failed(
                "the probe exited 2: unknown argument".into()
            ))
        );
        assert!(ended(None));
        assert!(!ended(Some(&pod(json!({ "phase": "Running" })))));
    }
}
