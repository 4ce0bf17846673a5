//! virt-api's VM lifecycle subresources, `PUT /apis/subresources.kubevirt.io/v1/namespaces/
//! NS/virtualmachines/NAME/{start,stop,restart,migrate}`, following kubevirt
//! `pkg/virt-api/rest/lifecycle.go` (`StartVMRequestHandler`, `StopVMRequestHandler`,
//! `RestartVMRequestHandler`, `MigrateVMRequestHandler`, `getChangeRequestJson`,
//! `getRunningPatch`) and `pkg/virt-api/rest/subresource.go` (messages, `decodeBody`).
//!
//! - Options come from the body only (`StartOptions`, `StopOptions`, `RestartOptions`,
//!   `MigrateOptions`); its `dryRun` is handed to the writes virt-api makes. A `dryRun`
//!   query parameter is not read: the routes (`pkg/virt-api/api.go`) declare none.
//! - start/stop change the VM by patching `spec.runStrategy` (`Halted` ↔ `Always`), or
//!   `spec.running` on a VM that still uses it. `Manual`/`RerunOnFailure` (and restart, and
//!   a stop under `Halted` with a shorter grace period) append to
//!   `status.stateChangeRequests`; the simulated virt-controller acts on those requests
//!   (`crate::sim::controllers::kubevirt`).
//! - migrate creates a `kubevirt-migrate-vm-` VirtualMachineInstanceMigration; whatever the
//!   create answers (an admission refusal included) comes back as a 500 InternalError, as
//!   `createMigrationJob` wraps it.
//!
//! Not modelled: `paused` starts beyond recording the request's data, hotplug/volume
//! migration conditions other than `ManualRecoveryRequired`/`VolumesChange`.

use serde_json::{json, Value};

use super::resources::{self, ResourceDef};
use super::status::ApiError;
use super::store::{Part, Store, WriteOptions};

/// `unmarshalRequestErrFmt`, `vmNotRunning`, … (subresource.go).
const VM_NOT_RUNNING: &str = "VM is not running";
const JSONPATCH_TEST_ERR: &str = "jsonpatch test operation does not apply";
const MANUAL_RECOVERY_REQUIRED: &str = "VM recovery required: Volume migration failed, leaving some volumes pointing to non-consistent targets; manual intervention is needed to reassign them to their original volumes.";

/// `errors.NewConflict(v1.Resource("virtualmachine"), name, err)`.
fn conflict(name: &str, why: &str) -> ApiError {
    ApiError::conflict("virtualmachine", "kubevirt.io", name, why)
}

/// `errors.NewInternalError(err)`.
fn internal(err: &str) -> ApiError {
    let mut e = ApiError::internal(format!("Internal error occurred: {err}"));
    e = e.with_causes(vec![super::status::Cause {
        field: String::new(),
        reason: String::new(),
        message: err.to_string(),
    }]);
    e
}

struct Kinds {
    vm: &'static ResourceDef,
    vmi: &'static ResourceDef,
    vmim: &'static ResourceDef,
}

fn kinds() -> Result<Kinds, ApiError> {
    match (
        resources::find("kubevirt.io", "v1", "virtualmachines"),
        resources::find("kubevirt.io", "v1", "virtualmachineinstances"),
        resources::find("kubevirt.io", "v1", "virtualmachineinstancemigrations"),
    ) {
        (Some(vm), Some(vmi), Some(vmim)) => Ok(Kinds { vm, vmi, vmim }),
        _ => Err(ApiError::internal(
            "kubevirt resources missing from the table",
        )),
    }
}

/// `decodeBody`: an empty body is `{}`; anything but a JSON/YAML object is a 400.
fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = super::patch::parse_json_or_yaml(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Can not unmarshal Request body to struct, error: {}",
            e.message
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Can not unmarshal Request body to struct, error: not an object",
        ));
    }
    Ok(v)
}

/// The options' `dryRun`, as the API server judges it when virt-api passes it on
/// (`ValidateDryRun`: only `All`); virt-api turns that refusal into an InternalError.
fn dry_run(options: &Value) -> Result<WriteOptions, ApiError> {
    let values: Vec<&str> = options
        .get("dryRun")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(bad) = values.iter().find(|v| **v != "All") {
        return Err(internal(&format!(
            "PatchOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \"{bad}\": supported values: \"All\""
        )));
    }
    Ok(WriteOptions {
        dry_run: !values.is_empty(),
        ..WriteOptions::default()
    })
}

/// `vm.RunStrategy()` (kubevirt `staging/src/kubevirt.io/api/core/v1/types.go`).
fn run_strategy(vm: &Value) -> Result<String, ApiError> {
    let running = vm.pointer("/spec/running").and_then(Value::as_bool);
    let strategy = vm.pointer("/spec/runStrategy").and_then(Value::as_str);
    match (running, strategy) {
        (Some(_), Some(_)) => Err(internal("running and runstrategy are mutually exclusive")),
        (Some(true), None) => Ok("Always".into()),
        (Some(false), None) | (None, None) => Ok("Halted".into()),
        (None, Some(s)) => Ok(s.to_string()),
    }
}

fn phase(vmi: &Value) -> &str {
    vmi.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `vmi.IsFinal()`.
fn is_final(vmi: &Value) -> bool {
    matches!(phase(vmi), "Succeeded" | "Failed")
}

fn has_condition_true(obj: &Value, kind: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// One `status.stateChangeRequests` entry.
fn request(action: &str, uid: Option<&str>, data: Option<Value>) -> Value {
    let mut r = json!({ "action": action });
    if let Some(uid) = uid {
        r["uid"] = json!(uid);
    }
    if let Some(d) = data {
        r["data"] = d;
    }
    r
}

/// `getChangeRequestJson` + the status PATCH: the requests are appended when none is
/// pending; a lone stop request replaces pending ones; anything else while requests are
/// pending is refused ("stop/start already underway"). A `startFailure` is cleared.
/// The JSON patch tests the list it read, so a concurrent change is a 409.
fn request_state_change(
    store: &Store,
    k: &Kinds,
    ns: &str,
    name: &str,
    vm: &Value,
    changes: Vec<Value>,
    opts: &WriteOptions,
) -> Result<(), ApiError> {
    let read = vm
        .pointer("/status/stateChangeRequests")
        .cloned()
        .unwrap_or(json!([]));
    let pending = read.as_array().map_or(0, Vec::len);
    let lone_stop = changes.len() == 1 && changes[0]["action"] == "Stop";
    if pending > 0 && !lone_stop {
        return Err(internal(
            "unable to complete request: stop/start already underway",
        ));
    }
    store
        .mutate(k.vm, ns, name, Part::Status, opts, |cur| {
            let mut v = cur.cloned().unwrap_or_default();
            let now = v
                .pointer("/status/stateChangeRequests")
                .cloned()
                .unwrap_or(json!([]));
            if now != read {
                return Err(conflict(name, JSONPATCH_TEST_ERR));
            }
            if !v.get("status").is_some_and(Value::is_object) {
                v["status"] = json!({});
            }
            v["status"]["stateChangeRequests"] = Value::Array(changes);
            if let Some(st) = v.get_mut("status").and_then(Value::as_object_mut) {
                st.remove("startFailure");
            }
            Ok(v)
        })
        .map(|_| ())
}

/// `getRunningPatch` + the VM PATCH: test-and-replace `spec.runStrategy` (`Always` or
/// `Halted`), or `spec.running` on a VM without a runStrategy.
fn set_running(
    store: &Store,
    k: &Kinds,
    ns: &str,
    name: &str,
    vm: &Value,
    running: bool,
    opts: &WriteOptions,
) -> Result<(), ApiError> {
    let field = if vm.pointer("/spec/runStrategy").is_some() {
        "runStrategy"
    } else {
        "running"
    };
    let read = vm.pointer(&format!("/spec/{field}")).cloned();
    let to = match (field, running) {
        ("runStrategy", true) => json!("Always"),
        ("runStrategy", false) => json!("Halted"),
        (_, r) => json!(r),
    };
    store
        .mutate(k.vm, ns, name, Part::Main, opts, |cur| {
            let mut v = cur.cloned().unwrap_or_default();
            if v.pointer(&format!("/spec/{field}")).cloned() != read {
                return Err(conflict(name, JSONPATCH_TEST_ERR));
            }
            if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert(field.into(), to);
            }
            Ok(v)
        })
        .map(|_| ())
}

/// `patchVMITerminationGracePeriod`: sets the VMI's grace period, returns the old one.
fn set_grace_period(
    store: &Store,
    k: &Kinds,
    ns: &str,
    vmi: &Value,
    seconds: i64,
    opts: &WriteOptions,
) -> Result<i64, ApiError> {
    let name = vmi
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let old = vmi
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    store
        .mutate(k.vmi, ns, name, Part::Main, opts, |cur| {
            let mut v = cur.cloned().unwrap_or_default();
            if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("terminationGracePeriodSeconds".into(), json!(seconds));
            }
            Ok(v)
        })
        .map_err(|e| internal(&e.message))?;
    Ok(old)
}

fn fetch_vm(store: &Store, k: &Kinds, ns: &str, name: &str) -> Result<Value, ApiError> {
    store
        .get(k.vm, ns, name)
        .ok_or_else(|| ApiError::not_found("virtualmachine", "kubevirt.io", name))
}

/// Runs one action; `Ok` answers 202 Accepted with an empty body.
pub fn vm_action(
    store: &Store,
    ns: &str,
    name: &str,
    action: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let k = kinds()?;
    match action {
        "start" => start(store, &k, ns, name, body),
        "stop" => stop(store, &k, ns, name, body),
        "restart" => restart(store, &k, ns, name, body),
        "migrate" => migrate(store, &k, ns, name, body),
        other => Err(ApiError::no_route(&format!("virtualmachines/{other}"))),
    }
}

/// `StartVMRequestHandler`.
fn start(store: &Store, k: &Kinds, ns: &str, name: &str, body: &[u8]) -> Result<(), ApiError> {
    let vm = fetch_vm(store, k, ns, name)?;
    let vmi = store.get(k.vmi, ns, name);
    if let Some(vmi) = &vmi {
        if !is_final(vmi) && !matches!(phase(vmi), "Unknown" | "") {
            return Err(conflict(name, "VM is already running"));
        }
    }
    if has_condition_true(&vm, "ManualRecoveryRequired") {
        return Err(conflict(name, MANUAL_RECOVERY_REQUIRED));
    }
    let options = decode_body(body)?;
    let paused = options.get("paused").and_then(Value::as_bool) == Some(true);
    let data = paused.then(|| json!({ "paused": "true" }));
    let strategy = run_strategy(&vm)?;
    match strategy.as_str() {
        "Halted" => {
            let opts = dry_run(&options)?;
            if paused {
                // A paused start is a request virt-controller turns into runStrategy Always.
                // (Upstream also compares the template's startStrategy, by pointer: the
                // comparison never holds, so every paused start takes this branch.)
                request_state_change(
                    store,
                    k,
                    ns,
                    name,
                    &vm,
                    vec![request("Start", None, data)],
                    &opts,
                )
            } else {
                set_running(store, k, ns, name, &vm, true, &opts)
            }
        }
        "RerunOnFailure" | "Manual" => {
            let vmi_phase = vmi.as_ref().map(phase);
            let needs_restart = (strategy == "RerunOnFailure" && vmi_phase == Some("Succeeded"))
                || (strategy == "Manual" && vmi.as_ref().is_some_and(is_final));
            if strategy == "RerunOnFailure" && vmi_phase == Some("Failed") {
                return Err(conflict(
                    name,
                    "RerunOnFailure does not support starting VM from failed state",
                ));
            }
            let changes = match (&vmi, needs_restart) {
                (Some(vmi), true) => vec![
                    request(
                        "Stop",
                        vmi.pointer("/metadata/uid").and_then(Value::as_str),
                        None,
                    ),
                    request("Start", None, data),
                ],
                _ => vec![request("Start", None, data)],
            };
            let opts = dry_run(&options)?;
            request_state_change(store, k, ns, name, &vm, changes, &opts)
        }
        "Always" | "Once" => Err(conflict(
            name,
            &format!("{strategy} does not support manual start requests"),
        )),
        // WaitAsReceiver and unknown strategies: no case in the switch, nothing changes.
        _ => Ok(()),
    }
}

/// `StopVMRequestHandler`.
fn stop(store: &Store, k: &Kinds, ns: &str, name: &str, body: &[u8]) -> Result<(), ApiError> {
    let options = decode_body(body)?;
    let vm = fetch_vm(store, k, ns, name)?;
    let strategy = run_strategy(&vm)?;
    let vmi = store.get(k.vmi, ns, name);
    let opts = dry_run(&options)?;
    let grace = options.get("gracePeriod").and_then(Value::as_i64);
    let mut old_grace = 0;
    if let (Some(vmi), Some(g)) = (&vmi, grace) {
        if !is_final(vmi) {
            old_grace = set_grace_period(store, k, ns, vmi, g, &opts)?;
        }
    }
    let running = vmi.as_ref().filter(|v| !is_final(v));
    let stop_request = |vmi: &Value| {
        vec![request(
            "Stop",
            vmi.pointer("/metadata/uid").and_then(Value::as_str),
            None,
        )]
    };
    match strategy.as_str() {
        "Halted" => {
            let Some(vmi) = running else {
                return Err(conflict(name, VM_NOT_RUNNING));
            };
            let has_grace = vmi.pointer("/spec/terminationGracePeriodSeconds").is_some();
            if grace.is_none_or(|g| has_grace && g >= old_grace) {
                return Err(conflict(
                    name,
                    "Halted only supports manual stop requests with a shorter graceperiod",
                ));
            }
            request_state_change(store, k, ns, name, &vm, stop_request(vmi), &opts)
        }
        "RerunOnFailure" | "Manual" => {
            let Some(vmi) = running else {
                return Err(conflict(name, VM_NOT_RUNNING));
            };
            request_state_change(store, k, ns, name, &vm, stop_request(vmi), &opts)
        }
        "Always" | "Once" => set_running(store, k, ns, name, &vm, false, &opts),
        _ => Ok(()),
    }
}

/// `RestartVMRequestHandler`.
fn restart(store: &Store, k: &Kinds, ns: &str, name: &str, body: &[u8]) -> Result<(), ApiError> {
    let options = decode_body(body)?;
    let grace = options.get("gracePeriodSeconds").and_then(Value::as_i64);
    match grace {
        Some(g) if g > 0 => {
            return Err(ApiError::bad_request(
                "For force restart, only gracePeriod=0 is supported for now",
            ))
        }
        Some(g) if g < 0 => {
            return Err(ApiError::bad_request(
                "gracePeriod has to be greater or equal to 0",
            ))
        }
        _ => {}
    }
    let vm = fetch_vm(store, k, ns, name)?;
    if has_condition_true(&vm, "VolumesChange") {
        return Err(conflict(name, MANUAL_RECOVERY_REQUIRED));
    }
    let strategy = run_strategy(&vm)?;
    if matches!(strategy.as_str(), "Halted" | "Once") {
        return Err(conflict(
            name,
            &format!("RunStategy {strategy} does not support manual restart requests"),
        ));
    }
    let Some(vmi) = store.get(k.vmi, ns, name) else {
        return Err(conflict(name, "VM is not running: Halted"));
    };
    let opts = dry_run(&options)?;
    if grace == Some(0) {
        set_grace_period(store, k, ns, &vmi, 1, &opts)?;
    }
    let changes = vec![
        request(
            "Stop",
            vmi.pointer("/metadata/uid").and_then(Value::as_str),
            None,
        ),
        request("Start", None, None),
    ];
    request_state_change(store, k, ns, name, &vm, changes, &opts)
}

/// `MigrateVMRequestHandler`.
fn migrate(store: &Store, k: &Kinds, ns: &str, name: &str, body: &[u8]) -> Result<(), ApiError> {
    let options = decode_body(body)?;
    fetch_vm(store, k, ns, name)?;
    // No VMI: virt-api's `FetchVirtualMachineInstance` answers 404 NotFound.
    let Some(vmi) = store.get(k.vmi, ns, name) else {
        return Err(ApiError::not_found(
            "virtualmachineinstances",
            "kubevirt.io",
            name,
        ));
    };
    if phase(&vmi) != "Running" {
        return Err(conflict(name, VM_NOT_RUNNING));
    }
    let mut vmim = json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": { "generateName": "kubevirt-migrate-vm-" },
        "spec": { "vmiName": name },
    });
    if let Some(sel) = options.get("addedNodeSelector").filter(|v| v.is_object()) {
        vmim["spec"]["addedNodeSelector"] = sel.clone();
    }
    let opts = dry_run(&options)?;
    store
        .create(k.vmim, ns, vmim, &opts)
        .map(|_| ())
        .map_err(|e| internal(&e.message))
}
