//! The incremental reconcile against the reference: random event sequences (cluster views,
//! finished commands with any result, wake-ups after random time, operator requests) drive
//! two fleets, one deciding only the changed and volatile VMs, one deciding every VM at
//! every pass. Every turn must be identical, and so must the run's summary.

use super::*;
use crate::checks::result::CheckResult;
use crate::cluster::phase::DvPhase;
use proptest::prelude::*;

/// Ten VMs in two waves ([`plan_text`] adds them), with `after` chains inside and across
/// waves, few slots, a window on the second wave, VMs sharing ESXi hosts.
const HEADER: &str = r#"
[plan]
name = "p"
namespace = "mig-p"

[source]
type = "vsphere"
url = "https://vcenter.example.internal"
credentials_secret = "vsphere-creds"
thumbprint = "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3"
vddk_init_image = "registry.example.internal/vddk-init:8.0.3"
power_off = "vsphere-api"

[defaults]
storage_class = "sim-standard"
checks = ["icmp"]
guest_agent = true

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "192.0.2.0/24"
gateway = "192.0.2.1"
owner = "netsec"

[[wave]]
name = "w1"
max_parallel_imports = 1
max_parallel_cutovers = 2
max_imports_per_host = 1

[[wave]]
name = "w2"
window = { start = 2026-12-05T23:10:00Z, end = 2026-12-05T23:40:00Z }
max_parallel_cutovers = 1

"#;

const VMS: usize = 10;
const WAVES: [&str; 2] = ["w1", "w2"];

/// With `forklift`: the same fleet on the Forklift backend (its w2 warm), so the per-Plan
/// gate, Forklift's views and its controls are compared too.
fn plan_text(forklift: bool) -> String {
    let mut text = HEADER.to_string();
    if forklift {
        text = text
            .replacen(
                "namespace = \"mig-p\"\n",
                "namespace = \"mig-p\"\nbackend = \"forklift\"\n",
                1,
            )
            .replacen(
                "owner = \"netsec\"\n",
                "owner = \"netsec\"\nsource_network = \"VLAN-210\"\n",
                1,
            )
            .replacen(
                "max_parallel_cutovers = 1\n",
                "max_parallel_cutovers = 1\nmigration = \"warm\"\n",
                1,
            );
    }
    for i in 0..VMS {
        let wave = if i < 6 { "w1" } else { "w2" };
        // b after a, d after a, e after d (inside w1); h after a, i after h (across waves).
        let after = match i {
            1 | 3 | 7 => "after = [\"vm0\"]\n",
            4 => "after = [\"vm3\"]\n",
            8 => "after = [\"vm7\"]\n",
            _ => "",
        };
        let disks = if i % 4 == 0 {
            format!("{{ backing_file = \"[ds1] vm{i}/a.vmdk\", size = \"10Gi\" }}, {{ backing_file = \"[ds2] vm{i}/b.vmdk\", size = \"1Gi\" }}")
        } else {
            format!("{{ backing_file = \"[ds1] vm{i}/a.vmdk\", size = \"10Gi\" }}")
        };
        text.push_str(&format!(
            "\n[[vm]]\nname = \"vm{i}\"\nwave = \"{wave}\"\nhost = \"esx-0{}\"\nsource_id = \"4207c1b2-5f0e-4c1e-9a7b-0123456789{i:02}\"\ncpu = 1\nmemory = \"1Gi\"\nnics = [{{ network = \"vlan-210\", ip = \"192.0.2.{}\", mac = \"00:50:56:ab:cd:{i:02}\" }}]\ndisks = [{disks}]\n{after}",
            i % 3,
            20 + i,
        ));
    }
    text
}

/// One step of a random run; numbers pick among the possibilities when it is applied.
#[derive(Debug, Clone)]
enum Op {
    /// A command in flight finishes (which one, and how).
    Done(usize, u8),
    /// A VM's objects change.
    Cluster(usize, u8, u8),
    /// Time passes, then the timer fires.
    Wake(u16),
    /// An operator request.
    Request(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<usize>(), any::<u8>()).prop_map(|(i, k)| Op::Done(i, k)),
        2 => (0..VMS, any::<u8>(), any::<u8>()).prop_map(|(v, a, b)| Op::Cluster(v, a, b)),
        2 => (0u16..1200).prop_map(Op::Wake),
        2 => (0u8..10, 0..VMS).prop_map(|(k, v)| Op::Request(k, v)),
    ]
}

/// What a finished command found: mostly what it should, sometimes a failure or a surprise.
fn update_for(cmd: &Command, k: u8) -> Result<Update, String> {
    if k.is_multiple_of(11) {
        return Err(format!("injected failure {k}"));
    }
    Ok(match cmd {
        Command::RunPreflight => match k % 5 {
            0 => Update::Preflight(Gate::Failed("quota".into()), Some(Power::On)),
            1 => Update::Preflight(Gate::Passed, Some(Power::Off)),
            _ => Update::Preflight(Gate::Passed, Some(Power::On)),
        },
        Command::PowerOffSource => Update::PoweredOff {
            hard: k.is_multiple_of(2),
            // vCenter names another host than the plan's, sometimes.
            host: k.is_multiple_of(3).then(|| format!("esx-0{}", k % 4)),
        },
        Command::PowerOnSource => Update::Power(Power::On),
        Command::ProbeOriginalIp => Update::IpGuard(if k.is_multiple_of(4) {
            IpGuard::Answering("00:50:56:00:00:01".into())
        } else {
            IpGuard::Silent
        }),
        Command::RunChecks => {
            let gate = if k.is_multiple_of(3) {
                Gate::Failed("icmp".into())
            } else {
                Gate::Passed
            };
            Update::Checks(gate, Vec::<CheckResult>::new())
        }
        _ => Update::Nothing,
    })
}

fn disk(k: u8) -> DiskObs {
    match k % 6 {
        0 => DiskObs::Absent,
        1 => DiskObs::Importing {
            phase: DvPhase::ImportScheduled,
            progress: None,
            restarts: 0,
            problem: None,
        },
        2 | 3 => DiskObs::Importing {
            phase: DvPhase::ImportInProgress,
            progress: Some(f64::from(k % 100) / 100.0),
            restarts: u32::from(k % 3),
            problem: None,
        },
        4 => DiskObs::Succeeded,
        _ => DiskObs::Failed("importer failed".into()),
    }
}

fn view(plan: &Plan, vm: usize, a: u8, b: u8, forklift: bool) -> ClusterView {
    let disks = (0..plan.vms[vm].disks.len())
        .map(|n| disk(a.wrapping_add(n as u8 * 7)))
        .collect();
    let vmi_phase = match b % 5 {
        0 => None,
        1 => Some(VmiPhase::Scheduling),
        2 => Some(VmiPhase::Failed),
        _ => Some(VmiPhase::Running),
    };
    ClusterView {
        disks,
        networks_ready: !b.is_multiple_of(7),
        vm_started: match a % 3 {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        },
        agent_connected: b.is_multiple_of(2),
        node: (b.is_multiple_of(3)).then(|| format!("node-{}", b % 2)),
        vmi_phase,
        stages: vec![],
        forklift: forklift.then(|| forklift_obs(a, b)),
        vm_labelled: a.is_multiple_of(2),
        // A resumed run's records of an earlier run's power-off and cutover.
        power_off: (a % 4 == 1).then_some(crate::cluster::labels::PowerOffStamp {
            requested_ms: 1_796_511_000_000 + i64::from(b),
            hard: b.is_multiple_of(2),
        }),
        recorded_downtime_ms: b.is_multiple_of(9).then_some(u64::from(a) * 1000),
    }
}

/// A Forklift view: no Migration yet, one running the VM at some step, or done with it.
fn forklift_obs(a: u8, b: u8) -> ForkliftObs {
    use crate::engine::decide::forklift::{MigrationObs, Outcome, VmObs};
    let attempt = u32::from(a % 3);
    ForkliftObs {
        migration: (!a.is_multiple_of(4)).then(|| MigrationObs {
            name: format!("p-w1-1-m{attempt}"),
            attempt,
            cutover_set: b.is_multiple_of(2),
            cancels_vm: b.is_multiple_of(5),
        }),
        vm: (!b.is_multiple_of(6)).then(|| {
            let outcome = match (a / 4) % 4 {
                0 => None,
                1 => Some(Outcome::Succeeded),
                2 => Some(Outcome::Failed),
                _ => Some(Outcome::Canceled),
            };
            VmObs {
                step: [
                    "Initialize",
                    "DiskTransferV2v",
                    "Cutover",
                    "VirtualMachineCreation",
                ][usize::from(b % 4)]
                .into(),
                phase: "Running".into(),
                progress: Some(f64::from(b % 100) / 100.0),
                error: (outcome == Some(Outcome::Failed))
                    .then(|| "ImageConversion: virt-v2v failed".into()),
                outcome,
                source_off: b.is_multiple_of(3),
                steps: Vec::new(),
                cutting_over: a.is_multiple_of(5),
            }
        }),
    }
}

fn request(k: u8, vm: usize) -> EngineRequest {
    let name = format!("vm{vm}");
    let wave = WAVES[vm % 2].to_string();
    match k {
        0 => EngineRequest::StartWave(wave),
        1 => EngineRequest::PauseWave(wave),
        2 => EngineRequest::ResumeWave(wave),
        3 => EngineRequest::CancelWave(wave),
        4 => EngineRequest::RetryVm(name),
        5 => EngineRequest::RollbackVm(name),
        6 => EngineRequest::ConfirmPowerOff(name),
        7 => EngineRequest::IgnoreWindow(wave),
        8 => EngineRequest::CancelVm(name),
        _ => EngineRequest::RunChecks(name),
    }
}

fn settings(dry_run: bool) -> Settings {
    Settings {
        dry_run,
        only_vms: BTreeSet::new(),
        auto_waves: vec!["w1".into(), "w2".into()],
        confirm_power_off: false,
        exit_when_done: true,
        agent_timeout: Duration::from_secs(600),
        guard_interval: Duration::from_secs(5),
        // 2026-12-05T23:00Z: w2's window opens ten minutes in.
        window_clock: WindowClock {
            start_ms: 1_796_511_600_000,
            speed: 1.0,
        },
        ignore_window: false,
        policy_vms: BTreeSet::new(),
    }
}

fn run(ops: &[Op], dry_run: bool, forklift: bool) -> Result<(), TestCaseError> {
    let plan = Arc::new(
        crate::plan::check_str(&plan_text(forklift), "p.toml")
            .plan
            .expect("the test plan is valid"),
    );
    let mut inc = Fleet::new(plan.clone(), settings(dry_run));
    let mut full = Fleet::new(plan.clone(), settings(dry_run));
    full.set_full_reconcile(true);
    let mut clock = Duration::ZERO;
    let mut in_flight: Vec<(usize, Command)> = Vec::new();
    let mut inputs: Vec<Input> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Done(i, k) if !in_flight.is_empty() => {
                let (vm, cmd) = in_flight.remove(i % in_flight.len());
                let result = update_for(&cmd, *k);
                inputs.push(Input::Done { vm, cmd, result });
            }
            Op::Done(..) => inputs.push(Input::Wake),
            Op::Cluster(vm, a, b) => inputs.push(Input::Cluster {
                vm: *vm,
                view: view(&plan, *vm, *a, *b, forklift),
            }),
            Op::Wake(secs) => {
                clock += Duration::from_secs(u64::from(*secs));
                inputs.push(Input::Wake);
            }
            Op::Request(k, vm) => inputs.push(Input::Request(request(*k, *vm))),
        }
        // Inputs arrive in bursts of one to three, as the runtime coalesces them.
        if n % 3 == 2 || matches!(op, Op::Wake(_)) {
            let now = Now {
                elapsed: clock,
                unix_ms: 1_800_000_000_000 + clock.as_millis() as i64,
            };
            let expected = turn(&mut full, inputs.clone(), now);
            let got = turn(&mut inc, std::mem::take(&mut inputs), now);
            prop_assert_eq!(&got, &expected, "turn {} after {:?}", n, op);
            prop_assert_eq!(inc.summary(), full.summary());
            in_flight.extend(got.commands.iter().cloned());
            if got.exit {
                break;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn incremental_decisions_equal_deciding_every_vm(ops in prop::collection::vec(op(), 1..160)) {
        run(&ops, false, false)?;
    }

    #[test]
    fn incremental_decisions_equal_deciding_every_vm_in_a_dry_run(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops, true, false)?;
    }

    #[test]
    fn incremental_decisions_equal_deciding_every_vm_on_forklift(ops in prop::collection::vec(op(), 1..160)) {
        run(&ops, false, true)?;
    }
}
