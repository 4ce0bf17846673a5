//! Runs the checks of a VM or a whole plan with a [`Prober`], concurrency-limited, with the
//! plan's timeouts and retries. Never panics on a check: whatever goes wrong becomes a
//! [`CheckResult`] with [`Outcome::Error`](super::result::Outcome::Error) and a detail.

use super::evaluate::{self, VmiInterface};
use super::probe::{DnsQuery, Probe, Prober};
use super::result::{now_rfc3339, CheckResult, Outcome};
use crate::plan::check::{CheckKind, CheckSpec};
use crate::plan::{NetworkModel, Plan, Vm};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What the cluster showed about migrated VMs: each VM's VMI `status.interfaces`, by plan
/// VM name. A VM without an entry has no VMI yet (before cutover, or not started):
/// `ip-preserved`/`mac-preserved` are then `skipped`.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub vmis: BTreeMap<String, Vec<VmiInterface>>,
}

impl Observations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a VMI object (or its `status`) as seen for `vm`.
    pub fn insert_vmi(&mut self, vm: impl Into<String>, vmi: &serde_json::Value) {
        self.vmis
            .insert(vm.into(), evaluate::interfaces_from_vmi(vmi));
    }

    /// Observations from VMI objects as listed from the cluster: each is filed under its
    /// `wavelift.io/vm` label (falling back to `metadata.name`).
    pub fn from_vmis<'a>(vmis: impl IntoIterator<Item = &'a serde_json::Value>) -> Self {
        let mut obs = Observations::new();
        for vmi in vmis {
            let meta = vmi.get("metadata");
            let name = meta
                .and_then(|m| m.get("labels"))
                .and_then(|l| l.get("wavelift.io/vm"))
                .or_else(|| meta.and_then(|m| m.get("name")))
                .and_then(|v| v.as_str());
            if let Some(name) = name {
                obs.insert_vmi(name, vmi);
            }
        }
        obs
    }

    pub fn interfaces(&self, vm: &str) -> Option<&[VmiInterface]> {
        self.vmis.get(vm).map(Vec::as_slice)
    }
}

/// Where `ip-preserved` and `mac-preserved` read a VM's VMI interfaces: afresh at every
/// attempt, because a real guest agent reports its interfaces on its own schedule (a first
/// look can miss an address the next one shows).
pub trait VmiSource: Sync {
    /// The VM's VMI `status.interfaces`, or `None` when it has no VMI.
    fn vmi_interfaces(&self, vm: &str) -> Option<Vec<VmiInterface>>;
    /// What ARP probes from inside the VLAN saw for `vm`'s IPs (`checks_from = "cluster"`).
    fn arp(&self, vm: &str) -> Option<evaluate::ArpAnswers> {
        let _ = vm;
        None
    }
}

impl VmiSource for Observations {
    fn vmi_interfaces(&self, vm: &str) -> Option<Vec<VmiInterface>> {
        self.interfaces(vm).map(<[VmiInterface]>::to_vec)
    }
}

/// How checks run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Checks in flight at once (at least 1).
    pub concurrency: usize,
    /// Default per-attempt timeout (`[defaults] check_timeout`), unless the check sets one.
    pub timeout: Duration,
    /// Default retries after a non-passing attempt (`[defaults] check_retries`).
    pub retries: u32,
    /// Pause between attempts.
    pub retry_pause: Duration,
    /// Resolver for `dns:` checks: `Ok(None)` = system resolver; `Err` = the plan's
    /// `dns_server` does not parse (every dns check is then an error saying so).
    pub dns_server: Result<Option<SocketAddr>, String>,
}

impl RunSettings {
    /// Settings from the plan's `[defaults]` and `[plan] dns_server`, 16 checks at once.
    pub fn from_plan(plan: &Plan) -> Self {
        RunSettings {
            concurrency: 16,
            timeout: plan.defaults.check_timeout,
            retries: plan.defaults.check_retries,
            retry_pause: Duration::from_millis(200),
            dns_server: match &plan.meta.dns_server {
                None => Ok(None),
                Some(s) => parse_dns_server(s)
                    .map(Some)
                    .ok_or_else(|| format!("dns_server `{}` is not IP or IP:PORT", s.value)),
            },
        }
    }
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT` → socket address (port 53 by default).
pub fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    t.parse::<SocketAddr>().ok()
}

/// The address checks of `vm` target: its first planned IP; for an L3 VM with an observed
/// VMI, the first address its guest agent reports (it got a new one on the pod network).
pub fn target_ip(plan: &Plan, vm: &Vm, obs: &dyn VmiSource) -> Option<IpAddr> {
    if plan.model_of(vm) == NetworkModel::L3 {
        if let Some(ifaces) = obs.vmi_interfaces(&vm.name) {
            let seen = ifaces
                .iter()
                .filter(|i| i.from_guest_agent())
                .flat_map(|i| i.ips())
                .find(|ip| !ip.is_loopback() && !is_link_local(ip));
            if seen.is_some() {
                return seen;
            }
        }
    }
    vm.nics
        .iter()
        .find_map(|n| n.ip.as_ref().map(|ip| ip.value))
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Why `ip-preserved` and `mac-preserved` are skipped for a guest without qemu-guest-agent.
pub const NEEDS_AGENT: &str = "needs the guest agent's report of the guest's addresses, and the plan says this guest has no qemu-guest-agent (guest_agent = false); with `checks_from = \"cluster\"` an ARP probe from inside the VLAN answers instead";

/// Runs every check of `vm` (`plan.checks_for(vm)`), in plan order.
pub async fn run_vm(
    plan: &Plan,
    vm: &Vm,
    prober: &dyn Prober,
    obs: &Observations,
    settings: &RunSettings,
) -> Vec<CheckResult> {
    let checks = plan.checks_for(vm);
    futures::stream::iter(
        checks
            .iter()
            .map(|spec| run_check(plan, vm, spec, prober, obs, settings)),
    )
    .buffered(settings.concurrency.max(1))
    .collect()
    .await
}

/// Runs every check of every VM, wave by wave in plan order, at most
/// `settings.concurrency` checks at once.
pub async fn run_plan(
    plan: &Plan,
    prober: &dyn Prober,
    obs: &Observations,
    settings: &RunSettings,
) -> Vec<CheckResult> {
    let work: Vec<(&Vm, CheckSpec)> = vms_in_plan_order(plan)
        .into_iter()
        .flat_map(|vm| plan.checks_for(vm).into_iter().map(move |s| (vm, s)))
        .collect();
    futures::stream::iter(
        work.iter()
            .map(|(vm, spec)| run_check(plan, vm, spec, prober, obs, settings)),
    )
    .buffered(settings.concurrency.max(1))
    .collect()
    .await
}

/// VMs wave by wave (waves in plan order), then any VM whose wave is not declared.
pub fn vms_in_plan_order(plan: &Plan) -> Vec<&Vm> {
    let mut out: Vec<&Vm> = plan
        .waves
        .iter()
        .flat_map(|w| plan.vms_in_wave(&w.name))
        .collect();
    out.extend(plan.vms.iter().filter(|v| plan.wave(&v.wave).is_none()));
    out
}

/// Runs one check with retries.
pub async fn run_check(
    plan: &Plan,
    vm: &Vm,
    spec: &CheckSpec,
    prober: &dyn Prober,
    obs: &dyn VmiSource,
    settings: &RunSettings,
) -> CheckResult {
    let timeout = spec.timeout.unwrap_or(settings.timeout);
    let retries = spec.retries.unwrap_or(settings.retries);
    let ip = target_ip(plan, vm, obs);
    let target = describe_target(&spec.kind, ip);
    let mut attempts = 0;
    let probe = loop {
        attempts += 1;
        let p = attempt(plan, vm, spec, ip, prober, obs, settings, timeout).await;
        // A skip cannot change on a retry; a failure can (the network, or what the guest
        // agent reports: `ip-preserved`/`mac-preserved` read the VMI again).
        let retryable = p.outcome.is_failure();
        if !retryable || attempts > retries {
            break p;
        }
        tokio::time::sleep(settings.retry_pause).await;
    };
    CheckResult {
        wave: vm.wave.value.clone(),
        vm: vm.name.value.clone(),
        check: spec.kind.to_string(),
        kind: spec.kind.kind_name().to_string(),
        target,
        outcome: probe.outcome,
        detail: probe.detail,
        latency: probe.latency,
        at: now_rfc3339(),
        attempts,
    }
}

fn describe_target(kind: &CheckKind, ip: Option<IpAddr>) -> String {
    let ip_s = ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    match kind {
        CheckKind::IpPreserved | CheckKind::MacPreserved | CheckKind::Icmp => ip_s,
        CheckKind::Tcp { port } => match ip {
            Some(ip) => SocketAddr::new(ip, *port).to_string(),
            None => format!("-:{port}"),
        },
        CheckKind::Http { url } => substitute_ip(url, ip),
        CheckKind::Dns { name } => name.clone(),
        CheckKind::DiskConsistent => "disks".into(),
    }
}

/// `{ip}` in a URL → the VM's IP (`[v6]` for IPv6).
pub fn substitute_ip(url: &str, ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => url.replace("{ip}", &format!("[{v6}]")),
        Some(ip) => url.replace("{ip}", &ip.to_string()),
        None => url.to_string(),
    }
}

#[allow(clippy::too_many_arguments)] // one caller: run_check
async fn attempt(
    plan: &Plan,
    vm: &Vm,
    spec: &CheckSpec,
    ip: Option<IpAddr>,
    prober: &dyn Prober,
    obs: &dyn VmiSource,
    settings: &RunSettings,
    timeout: Duration,
) -> Probe {
    let no_ip = || Probe::skipped("the VM has no planned IP");
    match &spec.kind {
        CheckKind::IpPreserved | CheckKind::MacPreserved => {
            let mac = spec.kind == CheckKind::MacPreserved;
            let arp = obs
                .arp(&vm.name)
                .and_then(|a| evaluate::arp_preserved(&vm.nics, &a, mac));
            let agent = if plan.guest_of(vm).guest_agent {
                obs.vmi_interfaces(&vm.name).map(|ifaces| {
                    if mac {
                        evaluate::mac_preserved(&vm.nics, &ifaces)
                    } else {
                        evaluate::ip_preserved(&vm.nics, &ifaces)
                    }
                })
            } else {
                None
            };
            // With both, they must agree: the first that does not pass is the answer.
            let e = match (agent, arp) {
                (None, None) if !plan.guest_of(vm).guest_agent => {
                    return Probe::skipped(NEEDS_AGENT)
                }
                (None, None) => return Probe::skipped("no VMI observed (not migrated yet)"),
                (Some(a), Some(b)) if a.outcome == Outcome::Pass && b.outcome == Outcome::Pass => {
                    evaluate::Evaluation {
                        outcome: Outcome::Pass,
                        detail: format!("guest agent and ARP agree: {}; {}", a.detail, b.detail),
                    }
                }
                (Some(a), Some(b)) => {
                    if a.outcome == Outcome::Pass {
                        b
                    } else {
                        a
                    }
                }
                (Some(e), None) | (None, Some(e)) => e,
            };
            Probe {
                outcome: e.outcome,
                detail: e.detail,
                latency: None,
            }
        }
        CheckKind::Icmp => match ip {
            Some(ip) => prober.icmp(ip, timeout).await,
            None => no_ip(),
        },
        CheckKind::Tcp { port } => match ip {
            Some(ip) => prober.tcp(SocketAddr::new(ip, *port), timeout).await,
            None => no_ip(),
        },
        CheckKind::Http { url } => {
            if url.contains("{ip}") && ip.is_none() {
                return no_ip();
            }
            let url = substitute_ip(url, ip);
            prober.http(&url, &spec.expect, timeout).await
        }
        CheckKind::DiskConsistent => {
            if plan.source.kind == crate::plan::SourceKind::Http {
                return Probe::skipped(
                    "an http source's images do not change: nothing can be missing",
                );
            }
            prober
                .disk_consistent(vm.name.as_str(), vm.disks.len(), timeout)
                .await
        }
        CheckKind::Dns { name } => {
            let Some(expected) = ip else {
                return no_ip();
            };
            let server = match &settings.dns_server {
                Ok(s) => *s,
                Err(e) => return Probe::error(e.clone()),
            };
            prober
                .dns(
                    DnsQuery {
                        name,
                        expected,
                        server,
                    },
                    timeout,
                )
                .await
        }
    }
}
