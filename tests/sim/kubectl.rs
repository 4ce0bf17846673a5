//! The real kubectl of this machine (`/usr/bin/kubectl`) against a served sim with a
//! written kubeconfig: api-resources, get, apply (client-side, server-side, server dry
//! run), label, describe, delete, get -w, wait, -o json, strict field validation.
//! Ignored by default (`needs kubectl`; `tools/test` runs them); run, a missing kubectl is a
//! failure, not a skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use wavelift::sim::{self, resources, store, SimHandle, SimOptions};

const KUBECTL: &str = "/usr/bin/kubectl";

/// A sim served over loopback (its own runtime), with kubectl pointed at it through a
/// written kubeconfig. Shared with `policy.rs`.
pub(crate) struct Served {
    rt: tokio::runtime::Runtime,
    handle: Option<SimHandle>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Served {
    fn new() -> Self {
        Self::with(SimOptions::default())
    }

    /// A sim started with `opts`.
    pub(crate) fn with(opts: SimOptions) -> Self {
        assert!(
            Path::new(KUBECTL).exists(),
            "kubectl is required for these tests and was not found at {KUBECTL}; install kubectl 1.32"
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt.block_on(sim::start(opts)).expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        handle.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Served {
            rt,
            handle: Some(handle),
            kubeconfig,
            dir,
        }
    }

    fn sim(&self) -> &SimHandle {
        self.handle.as_ref().expect("running")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.args(args)
            .arg("--request-timeout=20s")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Run kubectl to completion (killed after 60 s).
    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let pid = child.id();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
                // SAFETY: kill(2) on our own child's pid; no memory is involved. (Not the
                // `kill` binary: procps is not on every machine.)
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        let out = child.wait_with_output().expect("kubectl output");
        let _ = done_tx.send(());
        let _ = watchdog.join();
        out
    }

    /// Run kubectl: whether it succeeded, its stdout and its stderr.
    pub(crate) fn outcome(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.run(args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// Run kubectl and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Run kubectl and require failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("kubectl -o json prints JSON")
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_string_lossy().to_string()
    }

    /// Set an object's status in-process (what a simulated controller would do).
    fn set_status(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        status: Value,
    ) {
        let res = resources::find(group, version, plural).expect("resource");
        self.sim()
            .store()
            .mutate(
                res,
                ns,
                name,
                store::Part::Status,
                &store::WriteOptions::default(),
                |cur| {
                    let mut v = cur.cloned().unwrap_or_default();
                    v["status"] = status;
                    Ok(v)
                },
            )
            .expect("status update");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// Kill a child we started when the guard goes out of scope.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: mig\n";

fn vm_yaml(name: &str, run_strategy: &str) -> String {
    format!(
        r#"apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: mig
  labels:
    wavelift.io/plan: payments
spec:
  runStrategy: {run_strategy}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      domain:
        devices:
          disks:
          - name: disk0
            disk:
              bus: virtio
          interfaces:
          - name: vlan210
            bridge: {{}}
            macAddress: "00:50:56:ab:cd:01"
        memory:
          guest: 4Gi
      networks:
      - name: vlan210
        multus:
          networkName: mig/vlan-210
      volumes:
      - name: disk0
        dataVolume:
          name: {name}-disk0
"#
    )
}

const NAD: &str = r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vlan-210
  namespace: mig
spec:
  config: '{"cniVersion":"0.3.1","name":"vlan-210","type":"bridge","bridge":"br-trunk","vlan":210,"ipam":{}}'
"#;

#[test]
#[ignore = "needs kubectl"]
fn api_resources_lists_every_kind() {
    let s = Served::new();
    let out = s.ok(&["api-resources"]);
    for (name, short, gv, kind) in [
        (
            "virtualmachines",
            "vm,vms",
            "kubevirt.io/v1",
            "VirtualMachine",
        ),
        (
            "virtualmachineinstances",
            "vmi,vmis",
            "kubevirt.io/v1",
            "VirtualMachineInstance",
        ),
        (
            "virtualmachineinstancemigrations",
            "vmim,vmims",
            "kubevirt.io/v1",
            "VirtualMachineInstanceMigration",
        ),
        (
            "datavolumes",
            "dv,dvs",
            "cdi.kubevirt.io/v1beta1",
            "DataVolume",
        ),
        (
            "network-attachment-definitions",
            "net-attach-def",
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
        ),
        ("storageclasses", "sc", "storage.k8s.io/v1", "StorageClass"),
        (
            "persistentvolumeclaims",
            "pvc",
            "v1",
            "PersistentVolumeClaim",
        ),
        ("namespaces", "ns", "v1", "Namespace"),
    ] {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from api-resources:\n{out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cols.contains(&short) && cols.contains(&gv) && cols.contains(&kind),
            "{row}"
        );
    }
    let nodes = s.ok(&["get", "nodes"]);
    assert!(nodes.contains("sim-node-1"), "{nodes}");
}

#[test]
#[ignore = "needs kubectl"]
fn apply_get_label_describe_delete() {
    let s = Served::new();
    let ns = s.write("ns.yaml", NAMESPACE);
    s.ok(&["apply", "-f", &ns]);
    let nad = s.write("nad.yaml", NAD);
    s.ok(&["apply", "-f", &nad]);
    let vm = s.write("vm.yaml", &vm_yaml("web01", "Halted"));
    let out = s.ok(&["apply", "-f", &vm]);
    assert!(out.contains("created"), "{out}");
    let out = s.ok(&["apply", "-f", &vm]);
    assert!(out.contains("unchanged"), "{out}");

    let all = s.ok(&["get", "vm", "-A"]);
    assert!(all.contains("mig") && all.contains("web01"), "{all}");
    // kubectl lists in chunks (`limit`/`continue`): one object per page still lists all.
    let vm_b = s.write("vm-b.yaml", &vm_yaml("web02", "Halted"));
    s.ok(&["apply", "-f", &vm_b]);
    let chunked = s.ok(&["get", "vm", "-n", "mig", "--chunk-size=1", "-o", "name"]);
    // The same through the server-side table kubectl prints by default (all namespaces).
    let table = s.ok(&["get", "vm", "-A", "--chunk-size=1", "--no-headers"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert_eq!(
        chunked.lines().collect::<Vec<_>>(),
        [
            "virtualmachine.kubevirt.io/web01",
            "virtualmachine.kubevirt.io/web02"
        ],
        "{chunked}"
    );
    s.ok(&["delete", "vm", "web02", "-n", "mig"]);
    let obj = s.json(&["get", "vm", "web01", "-n", "mig"]);
    assert!(obj
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        .is_some());
    assert_eq!(obj.pointer("/spec/runStrategy"), Some(&json!("Halted")));

    // A changed manifest goes out as a merge patch.
    let vm2 = s.write("vm2.yaml", &vm_yaml("web01", "Always"));
    let out = s.ok(&["apply", "-f", &vm2]);
    assert!(out.contains("configured"), "{out}");
    let obj = s.json(&["get", "vm", "web01", "-n", "mig"]);
    assert_eq!(obj.pointer("/spec/runStrategy"), Some(&json!("Always")));
    assert_eq!(obj.pointer("/metadata/generation"), Some(&json!(2)));

    s.ok(&["label", "vm", "web01", "-n", "mig", "wavelift.io/wave=w1"]);
    let labelled = s.ok(&[
        "get",
        "vm",
        "-n",
        "mig",
        "-l",
        "wavelift.io/wave=w1",
        "-o",
        "name",
    ]);
    assert_eq!(labelled.trim(), "virtualmachine.kubevirt.io/web01");
    // Built-in kinds are labelled with a strategic merge patch.
    s.ok(&["label", "namespace", "mig", "team=netsec"]);
    let nsobj = s.json(&["get", "namespace", "mig"]);
    assert_eq!(
        nsobj.pointer("/metadata/labels/team"),
        Some(&json!("netsec"))
    );

    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid");
    let event = s.write(
        "event.yaml",
        &format!("apiVersion: v1\nkind: Event\nmetadata:\n  name: web01.1\n  namespace: mig\ninvolvedObject:\n  apiVersion: kubevirt.io/v1\n  kind: VirtualMachine\n  name: web01\n  namespace: mig\n  uid: {uid}\nreason: Imported\nmessage: disk import finished\ntype: Normal\nsource:\n  component: wavelift-sim\n"),
    );
    s.ok(&["apply", "-f", &event]);
    let described = s.ok(&["describe", "vm", "web01", "-n", "mig"]);
    assert!(described.contains("web01"), "{described}");
    assert!(
        described.contains("disk import finished"),
        "events in describe: {described}"
    );

    let out = s.ok(&["delete", "vm", "web01", "-n", "mig"]);
    assert!(out.contains("deleted"), "{out}");
    let err = s.fails(&["get", "vm", "web01", "-n", "mig"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[test]
#[ignore = "needs kubectl"]
fn server_side_apply_and_server_dry_run() {
    let s = Served::new();
    let ns = s.write("ns.yaml", NAMESPACE);
    s.ok(&["apply", "--server-side", "-f", &ns]);
    let vm = s.write("vm.yaml", &vm_yaml("web02", "Halted"));

    let out = s.ok(&["apply", "--dry-run=server", "-f", &vm]);
    assert!(out.contains("server dry run"), "{out}");
    let err = s.fails(&["get", "vm", "web02", "-n", "mig"]);
    assert!(
        err.contains("not found"),
        "dry run persisted nothing: {err}"
    );

    let out = s.ok(&["apply", "--server-side", "-f", &vm]);
    assert!(out.contains("serverside-applied"), "{out}");
    let obj = s.json(&["get", "vm", "web02", "-n", "mig", "--show-managed-fields"]);
    let managers: Vec<&str> = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m["manager"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(managers, vec!["kubectl"]);

    let vm2 = s.write("vm2.yaml", &vm_yaml("web02", "Always"));
    s.ok(&["apply", "--server-side", "-f", &vm2]);
    let obj = s.json(&["get", "vm", "web02", "-n", "mig"]);
    assert_eq!(obj.pointer("/spec/runStrategy"), Some(&json!("Always")));

    let out = s.ok(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        &s.write("vm3.yaml", &vm_yaml("web02", "Manual")),
    ]);
    assert!(out.contains("server dry run"), "{out}");
    let obj = s.json(&["get", "vm", "web02", "-n", "mig"]);
    assert_eq!(obj.pointer("/spec/runStrategy"), Some(&json!("Always")));
}

#[test]
#[ignore = "needs kubectl"]
fn strict_validation_and_protobuf_refusal() {
    let s = Served::new();
    s.ok(&["apply", "-f", &s.write("ns.yaml", NAMESPACE)]);
    let typo = vm_yaml("web03", "Halted").replace("macAddress", "macAdress");
    let err = s.fails(&["apply", "-f", &s.write("typo.yaml", &typo)]);
    assert!(
        err.contains("unknown field") && err.contains("macAdress"),
        "{err}"
    );

    let invalid = vm_yaml("web03", "Halted").replace(
        "name: vlan210\n        multus",
        "name: other\n        multus",
    );
    let err = s.fails(&["apply", "-f", &s.write("invalid.yaml", &invalid)]);
    assert!(
        err.contains("is invalid") && err.contains("networks[0].name"),
        "{err}"
    );

    let err = s.fails(&["create", "namespace", "imperative"]);
    assert!(err.contains("kubectl apply -f"), "{err}");
}

#[test]
#[ignore = "needs kubectl"]
fn get_watch_streams_changes() {
    let s = Served::new();
    s.ok(&["apply", "-f", &s.write("ns.yaml", NAMESPACE)]);
    s.ok(&[
        "apply",
        "-f",
        &s.write("a.yaml", &vm_yaml("watch-a", "Halted")),
    ]);
    let child = s
        .command(&["get", "vm", "-n", "mig", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl get -w");
    let mut child = KillOnDrop(child);
    let lines = lines_of(&mut child.0);
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("first line of get -w");
    assert_eq!(first.trim(), "virtualmachine.kubevirt.io/watch-a");
    s.ok(&[
        "apply",
        "-f",
        &s.write("b.yaml", &vm_yaml("watch-b", "Halted")),
    ]);
    let second = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("a streamed line after a create");
    assert_eq!(second.trim(), "virtualmachine.kubevirt.io/watch-b");
}

#[test]
#[ignore = "needs kubectl"]
fn wait_for_jsonpath_and_delete() {
    let s = Served::new();
    s.ok(&["apply", "-f", &s.write("ns.yaml", NAMESPACE)]);
    s.ok(&[
        "apply",
        "-f",
        &s.write("vm.yaml", &vm_yaml("web04", "Always")),
    ]);

    let waiter = s
        .command(&[
            "wait",
            "vm/web04",
            "-n",
            "mig",
            "--for=jsonpath={.status.printableStatus}=Running",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl wait");
    let mut waiter = KillOnDrop(waiter);
    let lines = lines_of(&mut waiter.0);
    // The waiter is running; the "controller" now reports the VM running.
    s.set_status(
        "kubevirt.io",
        "v1",
        "virtualmachines",
        "mig",
        "web04",
        json!({"printableStatus": "Running", "ready": true}),
    );
    let line = lines
        .recv_timeout(Duration::from_secs(40))
        .expect("kubectl wait reports the condition");
    assert!(line.contains("condition met"), "{line}");
    let status = waiter.0.wait().expect("wait exits");
    assert!(status.success());

    let vms = resources::find("kubevirt.io", "v1", "virtualmachines").expect("vm resource");
    let watches_before = s.sim().store().watches_started(vms);
    let deleter = s
        .command(&[
            "wait",
            "vm/web04",
            "-n",
            "mig",
            "--for=delete",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl wait --for=delete");
    let mut deleter = KillOnDrop(deleter);
    let lines = lines_of(&mut deleter.0);
    // Delete only once kubectl wait is watching (else it may find the VM already gone).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.sim().store().watches_started(vms) == watches_before {
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl wait never started watching"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.ok(&["delete", "vm", "web04", "-n", "mig", "--wait=false"]);
    let line = lines
        .recv_timeout(Duration::from_secs(40))
        .expect("kubectl wait --for=delete reports");
    assert!(
        line.contains("condition met") || line.contains("deleted"),
        "{line}"
    );
    assert!(deleter.0.wait().expect("exit").success());
}

#[test]
#[ignore = "needs kubectl"]
fn get_prints_server_side_columns() {
    let s = Served::new();
    s.ok(&["apply", "-f", &s.write("ns.yaml", NAMESPACE)]);
    s.ok(&[
        "apply",
        "-f",
        &s.write("vm.yaml", &vm_yaml("web05", "Always")),
    ]);
    s.set_status(
        "kubevirt.io",
        "v1",
        "virtualmachines",
        "mig",
        "web05",
        json!({"printableStatus": "Running", "ready": true}),
    );
    let out = s.ok(&["get", "vm", "-n", "mig"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, vec!["NAME", "STATUS", "READY", "AGE"], "{out}");
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], &["web05", "Running", "true"], "{out}");

    let all = s.ok(&["get", "vm", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains("mig") && all.contains("Running"), "{all}");

    let one = s.ok(&["get", "vm", "web05", "-n", "mig", "--show-labels"]);
    assert!(one.contains("wavelift.io/plan=payments"), "{one}");

    let child = s
        .command(&["get", "vm", "-n", "mig", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl get -w");
    let mut child = KillOnDrop(child);
    let lines = lines_of(&mut child.0);
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            lines
                .recv_timeout(Duration::from_secs(30))
                .expect("header and row"),
        );
    }
    assert!(seen[0].starts_with("NAME"), "{seen:?}");
    assert!(seen[1].starts_with("web05"), "{seen:?}");
    s.set_status(
        "kubevirt.io",
        "v1",
        "virtualmachines",
        "mig",
        "web05",
        json!({"printableStatus": "Stopping", "ready": false}),
    );
    let changed = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("a row for the change");
    assert!(
        changed.contains("web05") && changed.contains("Stopping"),
        "{changed}"
    );
}

/// A multi-stage DataVolume's checkpoints, as kubectl shows them.
#[test]
#[ignore = "needs kubectl"]
fn get_dv_yaml_shows_the_checkpoints() {
    let s = Served::new();
    s.ok(&["apply", "-f", &s.write("ns.yaml", NAMESPACE)]);
    let dv = r#"apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: web-disk0
  namespace: mig
  annotations:
    cdi.kubevirt.io/storage.usePopulator: "false"
spec:
  source:
    vddk:
      backingFile: "[ds1] web/web.vmdk"
      url: https://vcenter.example.internal
      uuid: 4207c1b2-5f0e-4c1e-9a7b-0123456789a3
      thumbprint: "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3"
      secretRef: vsphere-creds
  storage:
    resources:
      requests:
        storage: 20Gi
  checkpoints:
  - previous: ""
    current: snapshot-101
  - previous: "52 1f 3c 4d 5e 6f 70 81-92 a3 b4 c5 d6 e7 f8 09/17"
    current: snapshot-102
  finalCheckpoint: true
"#;
    s.ok(&["apply", "-f", &s.write("dv.yaml", dv)]);
    let out = s.ok(&["get", "dv", "web-disk0", "-n", "mig", "-o", "yaml"]);
    assert!(out.contains("checkpoints:"), "{out}");
    assert!(out.contains("current: snapshot-102"), "{out}");
    assert!(
        out.contains("previous: 52 1f 3c 4d 5e 6f 70 81-92 a3 b4 c5 d6 e7 f8 09/17"),
        "{out}"
    );
    assert!(out.contains("finalCheckpoint: true"), "{out}");
}
