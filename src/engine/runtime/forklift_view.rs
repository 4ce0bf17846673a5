//! The Forklift backend's part of the runtime: the plan's Forklift Plans and Migrations
//! (labelled with wavelift's plan label) watched into plain maps, and each VM's
//! [`ForkliftObs`] read from them: its Plan's latest Migration and its entry in
//! `Plan.status.migration.vms[]` mapped to what `decide` needs.

use crate::cluster::forklift::PlanGroup;
use crate::cluster::forklift_types::{conditions as ct, steps, VmStatus};
use crate::engine::decide::forklift::{ForkliftObs, MigrationObs, Outcome, VmObs};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Objects of one Forklift kind by name, as JSON (managed fields dropped).
pub type Objects = Arc<Mutex<BTreeMap<String, Value>>>;

/// Watches one Forklift kind of the namespace into `objects`; each change is reported on
/// `changed` by `key` (the Forklift Plan it concerns). Returns a receiver that says when
/// the first list is in.
pub fn watch<T: Send + 'static>(
    api: Api<DynamicObject>,
    selector: &str,
    objects: Objects,
    changed: mpsc::UnboundedSender<T>,
    key: fn(&Value) -> T,
    all: fn() -> T,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let cfg = watcher::Config::default().labels(selector);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut buffer: BTreeMap<String, Value> = BTreeMap::new();
        let mut s = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = s.next().await {
            let t = match ev {
                Ok(watcher::Event::Init) => {
                    buffer.clear();
                    continue;
                }
                Ok(watcher::Event::InitApply(o)) => {
                    let (n, v) = entry(o);
                    buffer.insert(n, v);
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    *objects.lock().unwrap_or_else(|p| p.into_inner()) =
                        std::mem::take(&mut buffer);
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    all()
                }
                Ok(watcher::Event::Apply(o)) => {
                    let (n, v) = entry(o);
                    let t = key(&v);
                    objects
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(n, v);
                    t
                }
                Ok(watcher::Event::Delete(o)) => {
                    let (n, v) = entry(o);
                    let t = key(&v);
                    objects.lock().unwrap_or_else(|p| p.into_inner()).remove(&n);
                    t
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Forklift watch error (retrying with backoff)");
                    continue;
                }
            };
            if changed.send(t).is_err() {
                break;
            }
        }
    });
    (task, ready_rx)
}

fn entry(mut o: DynamicObject) -> (String, Value) {
    o.metadata.managed_fields = None;
    let name = o.metadata.name.clone().unwrap_or_default();
    (name, serde_json::to_value(&o).unwrap_or(Value::Null))
}

/// The Forklift Plan a Plan or Migration concerns.
pub fn plan_of(v: &Value) -> String {
    if v["kind"] == "Migration" {
        v.pointer("/spec/plan/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// The attempt number of a Migration named `<plan>-m<attempt>`.
fn attempt_of(name: &str) -> Option<u32> {
    name.rsplit_once("-m")?.1.parse().ok()
}

fn true_cond(conds: &[crate::cluster::forklift_types::Condition], t: &str) -> bool {
    conds.iter().any(|c| c.type_ == t && c.status == "True")
}

/// VM `vm`'s view of Forklift: its Plan's latest Migration and its status in it.
pub fn view(
    group: &PlanGroup,
    vm: &str,
    warm: bool,
    plans: &Objects,
    migrations: &Objects,
) -> ForkliftObs {
    let plan = plans
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&group.name)
        .cloned();
    let id = plan.as_ref().and_then(|p| {
        p.pointer("/spec/vms")?
            .as_array()?
            .iter()
            .find(|r| r["name"] == vm || r["targetName"] == vm)
            .and_then(|r| r["id"].as_str().map(String::from))
    });
    let migration = {
        let m = migrations.lock().unwrap_or_else(|p| p.into_inner());
        m.values()
            .filter(|v| plan_of(v) == group.name)
            .filter_map(|v| {
                let name = v.pointer("/metadata/name")?.as_str()?.to_string();
                Some((attempt_of(&name).unwrap_or(0), name, v.clone()))
            })
            .max_by_key(|(a, _, _)| *a)
    };
    let migration = migration.map(|(attempt, name, v)| MigrationObs {
        cutover_set: v
            .pointer("/spec/cutover")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty()),
        cancels_vm: v
            .pointer("/spec/cancel")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|r| r["name"] == vm || id.as_deref().is_some_and(|i| r["id"] == i))
            }),
        name,
        attempt,
    });
    // The VM statuses are the Migration's Forklift last started (the Plan's history).
    let started = plan.as_ref().and_then(|p| {
        p.pointer("/status/migration/history")?
            .as_array()?
            .last()?
            .pointer("/migration/name")?
            .as_str()
            .map(String::from)
    });
    let current = migration
        .as_ref()
        .is_some_and(|m| started.as_deref() == Some(m.name.as_str()));
    let status: Option<VmStatus> = plan.as_ref().filter(|_| current).and_then(|p| {
        p.pointer("/status/migration/vms")?
            .as_array()?
            .iter()
            .filter_map(|v| serde_json::from_value::<VmStatus>(v.clone()).ok())
            .find(|v| {
                v.target_name == vm || v.name == vm || id.as_deref().is_some_and(|i| v.id == i)
            })
    });
    ForkliftObs {
        migration,
        vm: status.map(|s| vm_obs(&s, warm)),
    }
}

fn vm_obs(s: &VmStatus, warm: bool) -> VmObs {
    let outcome = if true_cond(&s.conditions, ct::SUCCEEDED) {
        Some(Outcome::Succeeded)
    } else if true_cond(&s.conditions, ct::FAILED) {
        Some(Outcome::Failed)
    } else if true_cond(&s.conditions, ct::CANCELED) {
        Some(Outcome::Canceled)
    } else {
        None
    };
    let step = s
        .pipeline
        .iter()
        .find(|st| st.task.phase == "Running")
        .or_else(|| s.pipeline.iter().rev().find(|st| st.task.started.is_some()))
        .or(s.pipeline.first())
        .map(|st| st.task.name.clone())
        .unwrap_or_default();
    let progress = [steps::DISK_TRANSFER_V2V, steps::DISK_TRANSFER]
        .iter()
        .find_map(|n| s.step(n))
        .filter(|st| st.task.progress.total > 0)
        .map(|st| {
            (st.task.progress.completed as f64 / st.task.progress.total as f64).clamp(0.0, 1.0)
        });
    let error = s
        .pipeline
        .iter()
        .find_map(|st| {
            st.task
                .error
                .as_ref()
                .map(|e| format!("{}: {}", st.task.name, e.reasons.join("; ")))
        })
        .or_else(|| {
            s.error
                .as_ref()
                .map(|e| format!("{}: {}", e.phase, e.reasons.join("; ")))
        });
    let done = |n: &str| s.step(n).is_some_and(|st| st.task.phase == "Completed");
    let started = |n: &str| s.step(n).is_some_and(|st| st.task.started.is_some());
    let source_off = outcome == Some(Outcome::Succeeded)
        || if warm {
            done(steps::CUTOVER) || started(steps::IMAGE_CONVERSION)
        } else {
            done(steps::INITIALIZE)
        };
    VmObs {
        step,
        phase: s.phase.clone(),
        progress,
        error,
        outcome,
        source_off,
        cutting_over: warm && started(steps::CUTOVER),
        steps: s
            .pipeline
            .iter()
            .map(|st| crate::checks::report::BackendStep {
                name: st.task.name.clone(),
                phase: st.task.phase.clone(),
                started: st.task.started.clone(),
                completed: st.task.completed.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_read_from_migration_names() {
        assert_eq!(attempt_of("p-w1-1-m1"), Some(1));
        assert_eq!(attempt_of("p-w1-1-m12"), Some(12));
        assert_eq!(attempt_of("p-w1-1"), None);
    }
}
