//! The rules that look across a plan: references, duplicates, addressing, VLANs, ordering,
//! source settings, and the warnings for risky-but-legal plans. Every rule runs; nothing
//! stops at the first problem.

use super::diag::{did_you_mean, Diagnostic};
use super::mac::VmwareMac;
use super::model::*;
use super::span::{Span, Spanned};
use crate::plan::check::CheckKind;
use crate::plan::time::humanize;
use std::net::IpAddr;

/// Maps keyed by names, addresses and MACs from the plan, hashed by foldhash rather than
/// SipHash (a plan is the operator's own file: no untrusted keys to defend against), with a
/// fixed seed so that iteration order, and so "did you mean" among equals, is the same in
/// every run.
type FoldBuild = foldhash::fast::FixedState;
type HashMap<K, V> = std::collections::HashMap<K, V, FoldBuild>;
type HashSet<K> = std::collections::HashSet<K, FoldBuild>;

pub(super) fn validate(plan: &Plan, out: &mut Vec<Diagnostic>) {
    let mut v = Validator {
        plan,
        out,
        vm_index: HashMap::default(),
    };
    v.meta();
    v.source();
    v.defaults();
    v.networks();
    v.waves();
    v.window_fits();
    v.vms();
    v.cutover_times();
    v.migrations();
    v.probes();
    v.ordering();
    v.forklift();
    v.policy();
}

struct Validator<'p, 'o> {
    plan: &'p Plan,
    out: &'o mut Vec<Diagnostic>,
    /// Each VM name to the index of its last VM (filled by `vms`, used again by `ordering`).
    vm_index: HashMap<&'p str, usize>,
}

/// RFC 1123 label: what Kubernetes names, namespaces and label values must be.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn label_hint(s: &str) -> String {
    let fixed: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fixed = fixed.trim_matches('-');
    if !fixed.is_empty() && fixed.len() <= 63 && fixed != s {
        format!("Kubernetes names are lowercase letters, digits and `-`; try `{fixed}`")
    } else {
        "Kubernetes names are 1–63 lowercase letters, digits and `-`, starting and ending with a letter or digit".into()
    }
}

impl Validator<'_, '_> {
    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    /// Whether reading already refused the network's `provider` (its value then stands in
    /// as `bridge`, and rules about bridges would only echo that error).
    fn provider_refused(&self, n: &Network) -> bool {
        self.out.iter().any(|d| {
            d.span == n.provider.span && matches!(d.code, "unsupported-provider" | "invalid-value")
        })
    }

    fn name_label(&mut self, what: &str, name: &Spanned<String>) {
        if !name.is_empty() && !is_dns_label(name) {
            self.push(
                Diagnostic::error(
                    "invalid-name",
                    name.span.clone(),
                    format!("{what} `{}` is not a valid Kubernetes name", name.value),
                )
                .with_hint(label_hint(name)),
            );
        }
    }

    fn meta(&mut self) {
        let m = &self.plan.meta;
        self.name_label("plan name", &m.name);
        self.name_label("namespace", &m.namespace);
        if let Some(d) = &m.dns_server {
            let ok = d.parse::<IpAddr>().is_ok() || d.parse::<std::net::SocketAddr>().is_ok();
            if !ok {
                self.push(
                    Diagnostic::error(
                        "bad-dns-server",
                        d.span.clone(),
                        format!("`{}` is not an address", d.value),
                    )
                    .with_hint(
                        "write `IP` or `IP:PORT`, e.g. \"192.0.2.53\" or \"192.0.2.53:5353\"",
                    ),
                );
            }
        }
    }

    fn source(&mut self) {
        let s = &self.plan.source;
        if s.span == (0..0) {
            return;
        }
        let needs_vsphere = s.kind == SourceKind::Vsphere || s.power_off == PowerOff::VsphereApi;
        if needs_vsphere {
            let why = if s.kind == SourceKind::Vsphere {
                "a vsphere source"
            } else {
                "`power_off = \"vsphere-api\"`"
            };
            match &s.url {
                None => self.push(
                    Diagnostic::error(
                        "missing-key",
                        s.span.start..s.span.start + 1,
                        format!("{why} needs `url` in [source]"),
                    )
                    .with_hint("add `url = \"https://vcenter.example.internal\"`"),
                ),
                Some(u) if !u.starts_with("https://") => self.push(
                    Diagnostic::error(
                        "bad-url",
                        u.span.clone(),
                        format!("vCenter URL `{}` must use https", u.value),
                    )
                    .with_hint("write `https://vcenter.example.internal`"),
                ),
                _ => {}
            }
            if s.credentials_secret.is_none() {
                self.push(
                    Diagnostic::error("missing-key", s.span.start..s.span.start + 1, format!("{why} needs `credentials_secret` in [source]"))
                        .with_hint("name a Secret in the plan's namespace holding the vCenter user and password: `credentials_secret = \"vsphere-creds\"`"),
                );
            }
        } else if let Some(u) = &s.url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                self.push(Diagnostic::error(
                    "bad-url",
                    u.span.clone(),
                    format!("`{}` is not an http(s) URL", u.value),
                ));
            }
        }
        if let Some(c) = &s.credentials_secret {
            if !is_dns_subdomain(c) {
                self.push(
                    Diagnostic::error(
                        "invalid-name",
                        c.span.clone(),
                        format!("Secret name `{}` is not a valid Kubernetes name", c.value),
                    )
                    .with_hint(label_hint(c)),
                );
            }
        }
        if s.kind == SourceKind::Vsphere {
            match &s.thumbprint {
                None => self.push(
                    Diagnostic::error("missing-key", s.span.start..s.span.start + 1, "a vsphere source needs the vCenter certificate `thumbprint` in [source]")
                        .with_hint("CDI's vddk importer pins the certificate by its SHA-1 thumbprint: `thumbprint = \"20:6C:…:A3\"`"),
                ),
                Some(t) => {
                    let parts: Vec<&str> = t.split(':').collect();
                    if parts.len() != 20 || parts.iter().any(|p| p.len() != 2 || u8::from_str_radix(p, 16).is_err()) {
                        self.push(
                            Diagnostic::error("bad-thumbprint", t.span.clone(), format!("`{}` is not a SHA-1 thumbprint", t.value))
                                .with_hint("20 hex octets separated by `:`, as `openssl x509 -fingerprint -sha1` prints"),
                        );
                    }
                }
            }
            if s.vddk_init_image.is_none() {
                self.push(
                    Diagnostic::warning("no-vddk-image", s.span.start..s.span.start + 1, "no `vddk_init_image` in [source]")
                        .with_hint("the import relies on CDI's cluster-wide VDDK image (v2v-vmware ConfigMap); set it here to be explicit"),
                );
            }
        } else {
            for (key, v) in [
                ("thumbprint", &s.thumbprint),
                ("vddk_init_image", &s.vddk_init_image),
            ] {
                if let Some(v) = v {
                    self.push(Diagnostic::warning(
                        "unused-key",
                        v.span.clone(),
                        format!("`{key}` is only used by vsphere sources"),
                    ));
                }
            }
        }
    }

    fn defaults(&mut self) {
        if let Some(sc) = &self.plan.defaults.storage_class {
            if !is_dns_subdomain(sc) {
                self.push(
                    Diagnostic::error(
                        "invalid-name",
                        sc.span.clone(),
                        format!("StorageClass `{}` is not a valid Kubernetes name", sc.value),
                    )
                    .with_hint(label_hint(sc)),
                );
            }
        }
        if self.plan.defaults.storage_class.is_none() {
            for vm in &self.plan.vms {
                for d in &vm.disks {
                    if d.storage_class.is_none() {
                        // Legal: the cluster's default StorageClass is used. Said once.
                        self.push(
                            Diagnostic::warning("default-storage-class", d.span.start..d.span.start + 1, "no storage_class for this disk or in [defaults]")
                                .with_hint("the cluster's default StorageClass will be used; set `storage_class` in [defaults] to be explicit"),
                        );
                        return;
                    }
                }
            }
        }
    }

    fn networks(&mut self) {
        let mut seen: HashMap<&str, &Network> = HashMap::default();
        // The networks L2 VMs use, gathered only if a network has no owner (the one rule
        // that asks; a VM-sized set otherwise built for nothing).
        let plan = self.plan;
        let l2_networks: HashSet<&str> = if plan.networks.iter().any(|n| n.owner.is_none()) {
            plan.vms
                .iter()
                .filter(|vm| plan.model_of(vm) == NetworkModel::L2)
                .flat_map(|vm| vm.nics.iter().map(|nic| nic.network.as_str()))
                .collect()
        } else {
            HashSet::default()
        };
        let mut vlans: HashMap<(u16, Option<&str>, &'static str), &Network> = HashMap::default();
        for n in &self.plan.networks {
            self.name_label("network name", &n.name);
            if !n.name.is_empty() {
                if let Some(prev) = seen.insert(&n.name, n) {
                    self.push(
                        Diagnostic::error("duplicate-network", n.name.span.clone(), format!("network `{}` is defined twice", n.name.value))
                            .with_hint(format!("the first definition starts at byte {}; give each network a distinct name", prev.name.span.start)),
                    );
                }
            }
            if let Some(v) = &n.vlan {
                let key = (
                    v.value,
                    n.bridge.as_ref().map(|b| b.as_str()),
                    n.provider.as_str(),
                );
                if let Some(prev) = vlans.insert(key, n) {
                    self.push(
                        Diagnostic::warning("duplicate-vlan", v.span.clone(), format!("VLAN {} is also carried by network `{}`", v.value, prev.name.value))
                            .with_hint("two networks for one VLAN work, but VMs on them share a broadcast domain; one network is clearer"),
                    );
                }
            }
            if let (Some(gw), Some(cidr)) = (&n.gateway, &n.cidr) {
                if !cidr.contains(&gw.value) {
                    self.push(
                        Diagnostic::error(
                            "gateway-outside-cidr",
                            gw.span.clone(),
                            format!("gateway {} is outside {}", gw.value, cidr.value),
                        )
                        .with_hint("the gateway must be an address of the network's CIDR"),
                    );
                }
            }
            if l2_networks.contains(n.name.as_str()) && n.owner.is_none() {
                self.push(
                    Diagnostic::warning("network-no-owner", n.name.span.clone(), format!("L2 network `{}` has no owner", n.name.value))
                        .with_hint("add `owner = \"team\"`: the team that owns the VLAN must agree to carry it into the cluster"),
                );
            }
            if n.provider.value == Provider::Bridge && !n.bridge_marker {
                self.push(
                    Diagnostic::warning("bridge-without-marker", n.name.span.clone(), format!("network `{}` requests no bridge-marker resource: nothing keeps its VMs off nodes without the bridge", n.name.value))
                        .with_hint("with `bridge_marker = true` (the default) the NAD requests `bridge.network.kubevirt.io/<bridge>`, the scheduler places VMs only where bridge-marker found the bridge, and preflight checks every node has it; set false only where bridge-marker does not run and every node is known to carry the VLAN"),
                );
            }
        }
    }

    /// In-cluster probes (issue 14; only validated so far): `checks_from = "cluster"` needs
    /// a `probe_image`; a network's `probe_ip` lies in its CIDR and is nobody's address; the
    /// per-node L2 proof needs something to ARP for.
    fn probes(&mut self) {
        let meta = &self.plan.meta;
        let cluster = meta.checks_from.value == ChecksFrom::Cluster;
        if cluster && meta.probe_image.is_none() {
            self.push(
                Diagnostic::error(
                    "cluster-checks-need-probe-image",
                    meta.checks_from.span.clone(),
                    "`checks_from = \"cluster\"` runs probe pods, which need `probe_image`",
                )
                .with_hint("add `probe_image = \"registry.example.internal/wavelift:0.1\"` to [plan] (README: the probe image)"),
            );
        }
        for n in &self.plan.networks {
            for (key, ip) in [
                ("probe_ip", &n.probe_ip),
                ("l2_probe_target", &n.l2_probe_target),
            ] {
                let Some(ip) = ip else { continue };
                match &n.cidr {
                    None => self.push(Diagnostic::error(
                        "probe-ip-without-cidr",
                        ip.span.clone(),
                        format!(
                            "network `{}` has a `{key}` but no `cidr` to check it against",
                            n.name.value
                        ),
                    )),
                    Some(cidr) if !cidr.value.contains(&ip.value) => self.push(Diagnostic::error(
                        "probe-ip-outside-cidr",
                        ip.span.clone(),
                        format!(
                            "`{key}` {} is outside network `{}` ({})",
                            ip.value, n.name.value, cidr.value
                        ),
                    )),
                    Some(_) => {}
                }
                if key != "probe_ip" {
                    continue;
                }
                if n.gateway.as_ref().is_some_and(|g| g.value == ip.value) {
                    self.push(Diagnostic::error(
                        "probe-ip-is-gateway",
                        ip.span.clone(),
                        format!(
                            "`probe_ip` {} is the gateway of network `{}`",
                            ip.value, n.name.value
                        ),
                    ));
                }
                // The first VM (in plan order) with this address on this network: looked
                // for only when there is a `probe_ip` (every network × every VM otherwise).
                let user = self.plan.vms.iter().find_map(|vm| {
                    vm.nics
                        .iter()
                        .any(|nic| {
                            *nic.network == *n.name
                                && nic.ip.as_ref().is_some_and(|a| a.value == ip.value)
                        })
                        .then_some(vm.name.as_str())
                });
                if let Some(vm) = user {
                    self.push(
                        Diagnostic::error(
                            "probe-ip-is-vm-ip",
                            ip.span.clone(),
                            format!("`probe_ip` {} is the IP of VM `{vm}`: a probe pod holding it would be a duplicate address", ip.value),
                        )
                        .with_hint("pick a spare address in the network, one no machine uses"),
                    );
                }
            }
            if cluster
                && n.gateway.is_none()
                && n.l2_probe_target.is_none()
                && self.plan.vms.iter().any(|vm| {
                    self.plan.model_of(vm) == NetworkModel::L2
                        && vm.nics.iter().any(|nic| *nic.network == *n.name)
                })
            {
                self.push(
                    Diagnostic::warning(
                        "l2-path-unprovable",
                        n.name.span.clone(),
                        format!("network `{}` has no `gateway` and no `l2_probe_target`: the per-node L2 proof is skipped", n.name.value),
                    )
                    .with_hint("name an address that always answers on the VLAN: `l2_probe_target = \"…\"`"),
                );
            }
        }
    }

    /// Warm migration copies vSphere snapshots: it needs a `vsphere` source (an `http`
    /// image never changes, so cold is the only type there).
    fn migrations(&mut self) {
        if self.plan.source.kind == SourceKind::Vsphere {
            if self.plan.source.power_off == PowerOff::Manual {
                let warm = self
                    .plan
                    .vms
                    .iter()
                    .find(|v| self.plan.migration_of(v) == Migration::Warm);
                if let Some(vm) = warm {
                    self.push(
                        Diagnostic::error(
                            "warm-needs-api-power-off",
                            vm.name.span.clone(),
                            format!("VM `{}` migrates warm, which needs `power_off = \"vsphere-api\"`: its final snapshot is taken once vCenter reports it powered off", vm.name.value),
                        )
                        .with_hint("set `power_off = \"vsphere-api\"` in [source] (with `shutdown = \"guest\"` the guest shuts itself down), or migrate cold"),
                    );
                }
            }
            return;
        }
        let waves = self.plan.waves.iter().filter_map(|w| w.migration.as_ref());
        let vms = self.plan.vms.iter().filter_map(|v| v.migration.as_ref());
        let warm: Vec<Span> = waves
            .chain(vms)
            .filter(|m| m.value == Migration::Warm)
            .map(|m| m.span.clone())
            .collect();
        for span in warm {
            self.push(
                Diagnostic::error(
                    "warm-needs-vsphere",
                    span,
                    "warm migration needs a `vsphere` source: it copies vSphere snapshots while the VM runs",
                )
                .with_hint("use `migration = \"cold\"` (the default) for `http` sources"),
            );
        }
    }

    /// A VM's own `cutover` time lies inside its wave's window: before it the window is
    /// not open, after it no cutover starts, so the time could never be kept.
    fn cutover_times(&mut self) {
        for vm in &self.plan.vms {
            let Some(at) = &vm.cutover else { continue };
            let Some(wave) = self.plan.wave(&vm.wave) else {
                continue;
            };
            match &wave.window {
                None => self.push(
                    Diagnostic::error(
                        "cutover-without-window",
                        at.span.clone(),
                        format!(
                            "VM `{}` names a cutover time but wave `{}` has no window",
                            vm.name.value, wave.name.value
                        ),
                    )
                    .with_hint("give the wave a `window` that contains the VM's cutover time"),
                ),
                Some(win) if at.unix < win.start.unix || at.unix >= win.end.unix => self.push(
                    Diagnostic::error(
                        "cutover-outside-window",
                        at.span.clone(),
                        format!(
                            "the cutover time of VM `{}` is outside the window of wave `{}`",
                            vm.name.value, wave.name.value
                        ),
                    )
                    .with_hint(format!(
                        "the window runs from {} to {}",
                        win.start.text, win.end.text
                    )),
                ),
                _ => {}
            }
        }
    }

    fn waves(&mut self) {
        let mut seen: HashSet<&str> = HashSet::default();
        for w in &self.plan.waves {
            self.name_label("wave name", &w.name);
            if !w.name.is_empty() && !seen.insert(&w.name) {
                self.push(Diagnostic::error(
                    "duplicate-wave",
                    w.name.span.clone(),
                    format!("wave `{}` is defined twice", w.name.value),
                ));
            }
            match &w.window {
                None => self.push(
                    Diagnostic::warning("wave-no-window", w.name.span.clone(), format!("wave `{}` has no window", w.name.value))
                        .with_hint("add `window = { start = 2026-12-05T22:00:00Z, end = 2026-12-06T04:00:00Z }` so the cutover stays inside the change window"),
                ),
                Some(win) if win.end.unix <= win.start.unix => self.push(
                    Diagnostic::error("bad-window", win.end.span.clone(), format!("the window of wave `{}` ends before it starts", w.name.value))
                        .with_hint(format!("`end` must be after `start` ({})", win.start.text)),
                ),
                _ => {}
            }
            if !w.name.is_empty() && !self.plan.vms.iter().any(|v| *v.wave == *w.name) {
                self.push(Diagnostic::warning(
                    "empty-wave",
                    w.name.span.clone(),
                    format!("wave `{}` has no VMs", w.name.value),
                ));
            }
        }
    }

    /// `window-too-short`: a wave whose cutovers cannot end inside its window at the
    /// assumed import throughput (`[plan] import_throughput`), with the estimator the engine
    /// uses for the window fit it reports as a run measures the real one
    /// ([`crate::plan::estimate`]). A cold cutover copies the whole disk, one import slot
    /// each (`min(max_parallel_cutovers, max_parallel_imports)` at a time); a warm one only
    /// its final delta, unknown before a precopy round is timed, so it counts only the time
    /// besides the copy.
    fn window_fits(&mut self) {
        use crate::plan::estimate::{cutover, Fit, Throughput, CUTOVER_OVERHEAD};
        use crate::plan::Migration;
        let plan = self.plan;
        let t = Throughput::assuming(plan.import_rate());
        // Per wave: each VM's estimate, the bytes cold cutovers copy, how many are cold.
        let mut wave_at: HashMap<&str, usize> = HashMap::default();
        let mut per_wave: Vec<(Vec<std::time::Duration>, u64, usize)> = Vec::new();
        // VMs come grouped by wave: the last one's wave is looked up again only on a change.
        let mut last: Option<(&str, usize)> = None;
        for vm in &plan.vms {
            let name = vm.wave.as_str();
            let i = match last {
                Some((n, i)) if n == name => i,
                _ => {
                    let i = *wave_at.entry(name).or_insert_with(|| {
                        per_wave.push(Default::default());
                        per_wave.len() - 1
                    });
                    last = Some((name, i));
                    i
                }
            };
            let e = &mut per_wave[i];
            match plan.migration_of(vm) {
                Migration::Cold => {
                    let bytes: u64 = vm.disks.iter().map(|d| d.size.value.bytes).sum();
                    e.0.push(cutover(bytes, None, &t));
                    e.1 += bytes;
                    e.2 += 1;
                }
                Migration::Warm => e.0.push(CUTOVER_OVERHEAD),
            }
        }
        for w in &plan.waves {
            let Some(win) = &w.window else { continue };
            let Some((estimates, bytes, cold)) =
                wave_at.get(w.name.as_str()).map(|&i| &per_wave[i])
            else {
                continue;
            };
            if win.end.unix <= win.start.unix {
                continue;
            }
            let lanes = if *cold > 0 {
                w.max_parallel_cutovers.min(w.max_parallel_imports)
            } else {
                w.max_parallel_cutovers
            };
            let length = std::time::Duration::from_secs((win.end.unix - win.start.unix) as u64);
            let fit = Fit::new(length, estimates, lanes);
            if fit.fits() {
                continue;
            }
            let copy = if *cold > 0 {
                format!(
                    "{} cold cutover(s) copy {:.0} GiB at {} per import",
                    cold,
                    *bytes as f64 / (1u64 << 30) as f64,
                    t.describe()
                )
            } else {
                "warm cutovers, their final deltas not counted".to_string()
            };
            self.push(
                Diagnostic::warning(
                    "window-too-short",
                    win.end.span.clone(),
                    format!(
                        "wave `{}` needs about {} for its {} cutover(s) ({copy}, {lanes} at a time, {} each besides the copy), but its window is {}",
                        w.name.value,
                        humanize(fit.needed),
                        fit.remaining,
                        humanize(CUTOVER_OVERHEAD),
                        humanize(length)
                    ),
                )
                .with_hint("widen the window, raise max_parallel_cutovers and max_parallel_imports, move VMs to another wave, or migrate them warm; set [plan] import_throughput to the rate your imports reach"),
            );
        }
    }

    fn vms(&mut self) {
        let plan = self.plan;
        let mut names: HashMap<&str, usize> =
            HashMap::with_capacity_and_hasher(plan.vms.len(), FoldBuild::default());
        let mut ips: HashMap<IpAddr, &str> =
            HashMap::with_capacity_and_hasher(plan.vms.len(), FoldBuild::default());
        let mut macs: HashMap<[u8; 6], &str> =
            HashMap::with_capacity_and_hasher(plan.vms.len(), FoldBuild::default());
        let networks: HashMap<&str, &Network> =
            plan.networks.iter().map(|n| (n.name.as_str(), n)).collect();
        let waves: HashSet<&str> = plan.waves.iter().map(|w| w.name.as_str()).collect();
        let vsphere = plan.source.kind == SourceKind::Vsphere;
        // The wave of the last VM whose wave was found ("" before the first).
        let mut known_wave: &str = "";

        for (i, vm) in plan.vms.iter().enumerate() {
            self.name_label("VM name", &vm.name);
            if !vm.name.is_empty() && names.insert(&vm.name, i).is_some() {
                self.push(
                    Diagnostic::error(
                        "duplicate-vm",
                        vm.name.span.clone(),
                        format!("VM `{}` is listed twice", vm.name.value),
                    )
                    .with_hint("each VM appears once in a plan; remove one entry or rename it"),
                );
            }
            // VMs come grouped by wave: a known wave is looked up again only on a change.
            let unknown_wave = !vm.wave.is_empty() && *vm.wave != *known_wave && {
                let found = waves.contains(vm.wave.as_str());
                if found {
                    known_wave = &vm.wave;
                }
                !found
            };
            if unknown_wave {
                self.push(
                    Diagnostic::error(
                        "unknown-wave",
                        vm.wave.span.clone(),
                        format!(
                            "VM `{}` is in unknown wave `{}`",
                            vm.name.value, vm.wave.value
                        ),
                    )
                    .with_hint_opt(
                        did_you_mean(&vm.wave, waves.iter().copied()).or_else(|| {
                            Some(format!(
                                "waves defined: {}",
                                join(plan.waves.iter().map(|w| w.name.as_str()))
                            ))
                        }),
                    ),
                );
            }
            let model = plan.model_of(vm);
            if vsphere {
                match &vm.source_id {
                    None => self.push(
                        Diagnostic::error("missing-key", vm.span.start..vm.span.start + 1, format!("VM `{}` has no `source_id`", vm.name.value))
                            .with_hint("CDI's vddk import needs the vSphere VM UUID: `source_id = \"4207c1b2-…\"` (RVTools vInfo column `VM UUID`)"),
                    ),
                    Some(id) if !is_uuid(id) => self.push(
                        Diagnostic::error("bad-source-id", id.span.clone(), format!("`{}` is not a vSphere VM UUID", id.value))
                            .with_hint("a UUID looks like 4207c1b2-5f0e-4c1e-9a7b-0123456789ab"),
                    ),
                    _ => {}
                }
            }
            if model == NetworkModel::L2 && vm.nics.is_empty() {
                self.push(
                    Diagnostic::error("l2-without-nic", vm.name.span.clone(), format!("L2 VM `{}` has no NIC", vm.name.value))
                        .with_hint("an L2 VM keeps its IP and MAC on a VLAN: add `nics = [{ network = \"…\", ip = \"…\", mac = \"…\" }]`, or set `network_model = \"l3\"`"),
                );
            }
            for nic in &vm.nics {
                self.nic(vm, model, nic, &networks, &mut ips, &mut macs, vsphere);
            }
            self.disks(vm);
            if no_checks(plan, vm) {
                self.push(
                    Diagnostic::warning("vm-no-checks", vm.name.span.clone(), format!("VM `{}` has no checks", vm.name.value))
                        .with_hint("without checks a cutover cannot be verified; add `checks = [\"icmp\", \"tcp:PORT\"]` or defaults in [defaults]"),
                );
            }
            self.guest(plan, vm);
            let has_ip = vm.nics.iter().any(|n| n.ip.is_some());
            for c in &vm.checks {
                match &c.kind {
                    CheckKind::IpPreserved if model == NetworkModel::L3 => self.push(
                        Diagnostic::error(
                            "check-contradicts-model",
                            c.span.clone(),
                            format!(
                                "`ip-preserved` cannot pass for L3 VM `{}`: it gets a new IP",
                                vm.name.value
                            ),
                        )
                        .with_hint("remove the check for this VM, or set `network_model = \"l2\"`"),
                    ),
                    CheckKind::Http { url } if url.contains("{ip}") && !has_ip => {
                        self.push(Diagnostic::error(
                            "check-without-ip",
                            c.span.clone(),
                            format!(
                                "`{url}` uses {{ip}} but VM `{}` has no known IP",
                                vm.name.value
                            ),
                        ))
                    }
                    _ => {}
                }
            }
            for a in &vm.after {
                if *a.value == *vm.name {
                    self.push(Diagnostic::error(
                        "self-dependency",
                        a.span.clone(),
                        format!("VM `{}` waits for itself", vm.name.value),
                    ));
                }
            }
        }
        // `after` references need every name first. (A VM without a name, "", is never
        // waited for: `after` entries are never blank.)
        let wave_index: HashMap<&str, usize> = plan
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), i))
            .collect();
        for vm in &plan.vms {
            for a in &vm.after {
                if *a.value == *vm.name {
                    continue;
                }
                match names.get(a.as_str()).map(|&i| &plan.vms[i]) {
                    None => self.push(
                        Diagnostic::error(
                            "unknown-vm",
                            a.span.clone(),
                            format!("VM `{}` waits for unknown VM `{}`", vm.name.value, a.value),
                        )
                        .with_hint_opt(did_you_mean(a, plan.vms.iter().map(|v| v.name.as_str()))),
                    ),
                    Some(dep) => {
                        let (Some(wi), Some(di)) = (
                            wave_index.get(vm.wave.as_str()),
                            wave_index.get(dep.wave.as_str()),
                        ) else {
                            continue;
                        };
                        if di > wi {
                            self.push(
                                Diagnostic::error("after-later-wave", a.span.clone(), format!("VM `{}` (wave `{}`) waits for `{}`, which is in the later wave `{}`", vm.name.value, vm.wave.value, dep.name.value, dep.wave.value))
                                    .with_hint(format!("move `{}` to wave `{}` or earlier, or drop the dependency", dep.name.value, vm.wave.value)),
                            );
                        }
                    }
                }
            }
        }
        self.vm_index = names;
    }

    #[allow(clippy::too_many_arguments)]
    fn nic<'p>(
        &mut self,
        vm: &'p Vm,
        model: NetworkModel,
        nic: &'p Nic,
        networks: &HashMap<&str, &'p Network>,
        ips: &mut HashMap<IpAddr, &'p str>,
        macs: &mut HashMap<[u8; 6], &'p str>,
        vsphere: bool,
    ) {
        let net = if nic.network.is_empty() {
            None
        } else {
            let found = networks.get(nic.network.as_str()).copied();
            if found.is_none() {
                self.push(
                    Diagnostic::error(
                        "unknown-network",
                        nic.network.span.clone(),
                        format!(
                            "VM `{}` uses unknown network `{}`",
                            vm.name.value, nic.network.value
                        ),
                    )
                    .with_hint_opt(
                        did_you_mean(&nic.network, networks.keys().copied()).or_else(|| {
                            Some(if networks.is_empty() {
                                "define it with a `[[network]]` table".to_string()
                            } else {
                                format!(
                                    "networks defined: {}",
                                    join(self.plan.networks.iter().map(|n| n.name.as_str()))
                                )
                            })
                        }),
                    ),
                );
            }
            found
        };
        if let (NetworkModel::L2, Some(n)) = (model, net) {
            if n.vlan.is_none() {
                self.push(
                    Diagnostic::error("l2-network-no-vlan", nic.network.span.clone(), format!("L2 VM `{}` is on network `{}`, which has no `vlan`", vm.name.value, n.name.value))
                        .with_hint(format!("add `vlan = N` to network `{}` so its VLAN can be carried into the cluster", n.name.value)),
                );
            }
            if n.provider.value == Provider::Bridge
                && n.bridge.is_none()
                && !self.provider_refused(n)
            {
                self.push(
                    Diagnostic::error("l2-network-no-bridge", nic.network.span.clone(), format!("L2 VM `{}` is on network `{}`, which has no `bridge`", vm.name.value, n.name.value))
                        .with_hint(format!("add `bridge = \"br-trunk\"` (the node bridge carrying the trunk) to network `{}`", n.name.value)),
                );
            }
        }
        match &nic.ip {
            Some(ip) => {
                if let Some(prev) = ips.insert(ip.value, vm.name.as_str()) {
                    self.push(
                        Diagnostic::error("duplicate-ip", ip.span.clone(), format!("IP {} of VM `{}` is also planned for VM `{}`", ip.value, vm.name.value, prev))
                            .with_hint("two VMs on one IP is an address conflict after cutover; check the inventory"),
                    );
                }
                if let Some(n) = net {
                    if let Some(cidr) = &n.cidr {
                        if !cidr.contains(&ip.value) {
                            self.push(
                                Diagnostic::error("ip-outside-cidr", ip.span.clone(), format!("IP {} is outside network `{}` ({})", ip.value, n.name.value, cidr.value))
                                    .with_hint("check the NIC's network, or the network's `cidr`"),
                            );
                        } else if cidr.prefix_len() < cidr.max_prefix_len() - 1 && matches!(cidr.value, ipnet::IpNet::V4(_)) && (ip.value == cidr.network() || ip.value == cidr.broadcast()) {
                            self.push(
                                Diagnostic::error("ip-reserved", ip.span.clone(), format!("IP {} is the network or broadcast address of {}", ip.value, cidr.value)),
                            );
                        }
                    }
                    if n.gateway.as_ref().is_some_and(|g| g.value == ip.value) {
                        self.push(
                            Diagnostic::error("ip-is-gateway", ip.span.clone(), format!("IP {} of VM `{}` is the gateway of network `{}`", ip.value, vm.name.value, n.name.value))
                                .with_hint("a VM cannot take its network's gateway address"),
                        );
                    }
                }
            }
            None if model == NetworkModel::L2 => self.push(
                Diagnostic::warning("nic-no-ip", nic.span.start..nic.span.end.min(nic.span.start + 1), format!("NIC of L2 VM `{}` on `{}` has no known IP", vm.name.value, nic.network.value))
                    .with_hint("without it the duplicate-IP guard and the connectivity checks cannot run; add `ip`"),
            ),
            None => {}
        }
        let mac = nic.mac.value;
        if mac.is_zero() {
            return; // missing or unparsable: already reported
        }
        if mac.is_multicast() {
            self.push(
                Diagnostic::error(
                    "bad-mac",
                    nic.mac.span.clone(),
                    format!("MAC {mac} is a multicast address"),
                )
                .with_hint("a NIC's MAC has the low bit of the first octet clear"),
            );
        } else if mac.vmware() == VmwareMac::Reserved {
            self.push(
                Diagnostic::error("vmware-reserved-mac", nic.mac.span.clone(), format!("MAC {mac} is in VMware's reserved range"))
                    .with_hint("00:50:56:40:00:00–00:50:56:7F:FF:FF and 00:50:56:C0:00:00–FF:FF:FF are kept for host interfaces; VMs use 00:50:56:00–3F (static) or 80–BF (vCenter)"),
            );
        } else if vsphere && mac.vmware() == VmwareMac::NotVmware {
            self.push(
                Diagnostic::warning("non-vmware-mac", nic.mac.span.clone(), format!("MAC {mac} is outside VMware's OUIs"))
                    .with_hint("a vSphere VM normally has a 00:50:56 or 00:0c:29 MAC; check it against the inventory"),
            );
        }
        if let Some(prev) = macs.insert(mac.0, vm.name.as_str()) {
            self.push(
                Diagnostic::error(
                    "duplicate-mac",
                    nic.mac.span.clone(),
                    format!(
                        "MAC {mac} of VM `{}` is also planned for VM `{}`",
                        vm.name.value, prev
                    ),
                )
                .with_hint("every NIC keeps its own MAC; a duplicate breaks both VMs on the VLAN"),
            );
        }
    }

    /// What the guest needs: a guest agent for the agent's checks, virtio drivers for
    /// virtio disks on Windows.
    fn guest(&mut self, plan: &Plan, vm: &Vm) {
        let guest = plan.guest_of(vm);
        // From the cluster, ARP on the VLAN answers them for an L2 VM with an IPv4 address.
        let by_arp = plan.meta.checks_from.value == crate::plan::ChecksFrom::Cluster
            && plan.model_of(vm) == crate::plan::NetworkModel::L2
            && vm
                .nics
                .iter()
                .any(|n| n.ip.as_ref().is_some_and(|ip| ip.value.is_ipv4()));
        if !guest.guest_agent && !by_arp {
            for kind in [CheckKind::IpPreserved, CheckKind::MacPreserved] {
                if !has_check(plan, vm, &kind) {
                    continue;
                }
                // Point at the VM's own check, else at the VM (the check is a default).
                let span = vm
                    .checks
                    .iter()
                    .find(|c| c.kind == kind)
                    .map_or(vm.name.span.clone(), |c| c.span.clone());
                // Said for most VMs of a plan without guest agents: built without `format!`.
                self.push(
                    Diagnostic::warning(
                        "check-needs-agent",
                        span,
                        concat(&[
                            "`",
                            kind.kind_name(),
                            "` will be skipped for VM `",
                            &vm.name.value,
                            "`: it needs qemu-guest-agent and the plan says the guest has none",
                        ]),
                    )
                    .with_hint("set `guest_agent = true` (VM or [defaults]) if the guest runs qemu-guest-agent, or check from the cluster (`checks_from = \"cluster\"`: ARP from the VLAN answers them); `icmp` and `tcp:PORT` checks work without it"),
                );
            }
        }
        let os = vm.os.as_ref().map(|o| o.value);
        // On the Forklift backend virt-v2v injects the virtio drivers.
        if os == Some(GuestOs::Windows)
            && guest.disk_bus == DiskBus::Virtio
            && plan.meta.backend.value != Backend::Forklift
        {
            let span = vm
                .disk_bus
                .as_ref()
                .map(|b| b.span.clone())
                .or_else(|| vm.os.as_ref().map(|o| o.span.clone()))
                .unwrap_or_else(|| vm.name.span.clone());
            self.push(
                Diagnostic::warning(
                    "windows-virtio-disks",
                    span,
                    format!(
                        "Windows guest `{}` on virtio disks will not boot without virtio drivers (INACCESSIBLE_BOOT_DEVICE)",
                        vm.name.value
                    ),
                )
                .with_hint("install the virtio drivers in the guest before the cutover, or set `disk_bus = \"sata\"` for this VM"),
            );
        }
    }

    fn disks(&mut self, vm: &Vm) {
        let vsphere = self.plan.source.kind == SourceKind::Vsphere;
        let has_source = self.plan.source.span != (0..0);
        for d in &vm.disks {
            if !has_source {
                continue;
            }
            if vsphere {
                match &d.backing_file {
                    None => self.push(
                        Diagnostic::error("missing-key", d.span.start..d.span.start + 1, format!("a disk of VM `{}` has no `backing_file`", vm.name.value))
                            .with_hint("vsphere sources import by datastore path: `backing_file = \"[ds1] vm/vm.vmdk\"`"),
                    ),
                    Some(b) if !is_backing_file(b) => self.push(
                        Diagnostic::error("bad-backing-file", b.span.clone(), format!("`{}` is not a datastore path", b.value))
                            .with_hint("write `[datastore] folder/disk.vmdk`"),
                    ),
                    _ => {}
                }
                if let Some(u) = &d.url {
                    self.push(
                        Diagnostic::error(
                            "wrong-source-key",
                            u.span.clone(),
                            "`url` disks need `type = \"http\"` in [source]",
                        )
                        .with_hint("use `backing_file` for vsphere sources"),
                    );
                }
            } else {
                match &d.url {
                    None => self.push(
                        Diagnostic::error("missing-key", d.span.start..d.span.start + 1, format!("a disk of VM `{}` has no `url`", vm.name.value))
                            .with_hint("http sources import images by URL: `url = \"https://images.example.internal/vm.qcow2\"`"),
                    ),
                    Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 => self.push(
                        Diagnostic::error("bad-url", u.span.clone(), format!("`{}` is not an http(s) URL", u.value)),
                    ),
                    _ => {}
                }
                if let Some(b) = &d.backing_file {
                    self.push(
                        Diagnostic::error(
                            "wrong-source-key",
                            b.span.clone(),
                            "`backing_file` disks need `type = \"vsphere\"` in [source]",
                        )
                        .with_hint("use `url` for http sources"),
                    );
                }
            }
            if let Some(sc) = &d.storage_class {
                if !is_dns_subdomain(sc) {
                    self.push(
                        Diagnostic::error(
                            "invalid-name",
                            sc.span.clone(),
                            format!("StorageClass `{}` is not a valid Kubernetes name", sc.value),
                        )
                        .with_hint(label_hint(sc)),
                    );
                }
            }
        }
        if vm.disks.is_empty() && !vm.name.is_empty() && has_source {
            // An explicit empty list; a missing key was reported by the reader.
        }
    }

    /// Cycles in `after` (within a wave; cross-wave edges point backwards by rule).
    fn ordering(&mut self) {
        let plan = self.plan;
        let index = &self.vm_index;
        let edges: Vec<Vec<(usize, &Spanned<String>)>> = plan
            .vms
            .iter()
            .map(|vm| {
                vm.after
                    .iter()
                    .filter_map(|a| index.get(a.as_str()).map(|&i| (i, a)))
                    .filter(|(i, _)| plan.vms[*i].name != vm.name)
                    .collect()
            })
            .collect();
        // 0 = unvisited, 1 = on stack, 2 = done. Iterative DFS.
        let mut state = vec![0u8; plan.vms.len()];
        let mut reported: HashSet<usize> = HashSet::default();
        for root in 0..plan.vms.len() {
            if state[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&(to, span)) = edges[node].get(*next) {
                    *next += 1;
                    match state[to] {
                        0 => {
                            state[to] = 1;
                            stack.push((to, 0));
                        }
                        1 => {
                            let pos = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                            let cycle: Vec<usize> = stack[pos..].iter().map(|(n, _)| *n).collect();
                            if cycle.iter().all(|n| !reported.contains(n)) {
                                reported.extend(cycle.iter().copied());
                                let mut path: Vec<&str> =
                                    cycle.iter().map(|&n| plan.vms[n].name.as_str()).collect();
                                path.push(plan.vms[to].name.as_str());
                                self.push(
                                    Diagnostic::error(
                                        "dependency-cycle",
                                        span.span.clone(),
                                        format!(
                                            "`after` dependencies form a cycle: {}",
                                            path.join(" → ")
                                        ),
                                    )
                                    .with_hint("remove one of these `after` entries"),
                                );
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }
}

impl Validator<'_, '_> {
    /// The Forklift backend's own rules: a vSphere source, a valid Provider name, a source
    /// port group per used network, one StorageClass per datastore (a StorageMap maps a
    /// datastore to one class), and the import limits it cannot apply.
    /// Network policy (issue 17): `draft` and `apply` need firewall exports to draft from;
    /// `apply` needs the operator's probe sources (so checks keep working) and, on every
    /// network an L2 VM uses (Linux bridge or OVN-Kubernetes localnet), a named
    /// MultiNetworkPolicy implementation that enforces it on the nodes.
    fn policy(&mut self) {
        let meta = &self.plan.meta;
        let mode = meta.policy.value;
        if mode == PolicyMode::Off {
            return;
        }
        let span = meta.policy.span.clone();
        if meta.policy_sources.is_empty() {
            self.push(
                Diagnostic::error(
                    "policy-needs-sources",
                    span.clone(),
                    format!("`policy = \"{}\"` drafts each VM's policy from firewall exports, but [plan] has no `policy_sources`", mode.as_str()),
                )
                .with_hint("add `policy_sources = [\"exports/firewall\"]` (files or directories, relative to the plan)"),
            );
        }
        if mode != PolicyMode::Apply {
            return;
        }
        let cluster = meta.checks_from.value == ChecksFrom::Cluster;
        if !cluster && meta.probe_sources.is_empty() {
            self.push(
                Diagnostic::error(
                    "policy-needs-probe-sources",
                    span.clone(),
                    "`policy = \"apply\"` with workstation checks needs `probe_sources`: without them the applied policy would cut off wavelift's own checks",
                )
                .with_hint("add `probe_sources = [\"198.51.100.7/32\"]` (the CIDRs your checks come from; the rehearsal workstation is 198.51.100.254)"),
            );
        }
        let used: HashSet<&str> = self
            .plan
            .vms
            .iter()
            .filter(|vm| self.plan.model_of(vm) == NetworkModel::L2)
            .flat_map(|vm| vm.nics.iter().map(|n| n.network.as_str()))
            .collect();
        for n in &self.plan.networks {
            if !used.contains(n.name.as_str()) {
                continue;
            }
            if cluster && n.probe_ip.is_none() {
                self.push(
                    Diagnostic::error(
                        "policy-needs-probe-ip",
                        n.name.span.clone(),
                        format!("`policy = \"apply\"` with `checks_from = \"cluster\"` admits the probe pods by their `probe_ip`, and network `{}` has none", n.name.value),
                    )
                    .with_hint("add a spare address of the network as `probe_ip`"),
                );
            }
            // Neither provider filters a secondary network by default: a policy applied there
            // would enforce nothing while the checks keep passing. OVN-Kubernetes enforces
            // MultiNetworkPolicy on localnet networks only with multi-network policy enabled
            // (`enable-multi-networkpolicy`; OpenShift: `useMultiNetworkPolicy` on the cluster
            // Network operator), which the plan cannot see: the operator says so by naming it.
            if n.multi_network_policy.is_none() {
                let (message, hint) = match n.provider.value {
                    Provider::Bridge => (
                        format!("`policy = \"apply\"` on Linux-bridge network `{}`: nothing enforces a MultiNetworkPolicy on bridge attachments unless an implementation runs on the nodes", n.name.value),
                        "deploy one (e.g. multi-networkpolicy-iptables) and name it: `multi_network_policy = \"multi-networkpolicy-iptables\"`; or use `policy = \"draft\"`",
                    ),
                    Provider::OvnLocalnet => (
                        format!("`policy = \"apply\"` on OVN-Kubernetes localnet network `{}`: OVN-Kubernetes enforces MultiNetworkPolicy on secondary networks only with multi-network policy enabled", n.name.value),
                        "enable it (ovnkube `enable-multi-networkpolicy`; OpenShift: `useMultiNetworkPolicy: true` on network.operator.openshift.io/cluster) and say so: `multi_network_policy = \"ovn-kubernetes\"`; or use `policy = \"draft\"`",
                    ),
                };
                self.push(
                    Diagnostic::error("policy-unenforced-network", n.name.span.clone(), message)
                        .with_hint(hint),
                );
            }
        }
    }

    fn forklift(&mut self) {
        let plan = self.plan;
        if plan.meta.backend.value != Backend::Forklift {
            return;
        }
        let span = plan.meta.backend.span.clone();
        if plan.source.span != (0..0) && plan.source.kind != SourceKind::Vsphere {
            self.push(
                Diagnostic::error(
                    "forklift-needs-vsphere",
                    span.clone(),
                    "the `forklift` backend migrates from vCenter: it needs `type = \"vsphere\"` in [source]",
                )
                .with_hint("use `backend = \"cdi\"` for `http` disk images"),
            );
        }
        if let Some(p) = &plan.meta.forklift_provider {
            if !is_dns_subdomain(p) {
                self.push(
                    Diagnostic::error(
                        "invalid-name",
                        p.span.clone(),
                        format!("Provider name `{}` is not a valid Kubernetes name", p.value),
                    )
                    .with_hint(label_hint(p)),
                );
            }
        }
        let used: HashSet<&str> = plan
            .vms
            .iter()
            .flat_map(|vm| vm.nics.iter().map(|n| n.network.as_str()))
            .collect();
        for n in &plan.networks {
            if n.source_network.is_none() && used.contains(n.name.as_str()) {
                self.push(
                    Diagnostic::error(
                        "forklift-network-unmapped",
                        n.name.span.clone(),
                        format!(
                            "network `{}` has no `source_network`: Forklift's NetworkMap needs the vSphere port group it carries",
                            n.name.value
                        ),
                    )
                    .with_hint("add `source_network = \"VLAN-210\"` (the port group name, or its id such as `network-12`); `wavelift plan init` fills it from RVTools vNetwork"),
                );
            }
        }
        // One StorageClass per datastore: the first disk seen on a datastore decides.
        let default_sc = plan.defaults.storage_class.as_ref().map(|s| s.as_str());
        let mut by_ds: HashMap<&str, (Option<&str>, &str)> = HashMap::default();
        for vm in &plan.vms {
            for d in &vm.disks {
                let Some(ds) = d.datastore() else { continue };
                let sc = d.storage_class.as_ref().map(|s| s.as_str()).or(default_sc);
                match by_ds.get(ds) {
                    None => {
                        by_ds.insert(ds, (sc, vm.name.as_str()));
                    }
                    Some((prev, prev_vm)) if *prev != sc => {
                        let at = d
                            .storage_class
                            .as_ref()
                            .map(|s| s.span.clone())
                            .unwrap_or_else(|| d.span.start..d.span.start + 1);
                        self.push(
                            Diagnostic::error(
                                "forklift-storage-class-conflict",
                                at,
                                format!(
                                    "a disk of VM `{}` on datastore `{ds}` asks for StorageClass `{}`, but a disk of VM `{prev_vm}` on it asks for `{}`: Forklift's StorageMap maps a datastore to one StorageClass",
                                    vm.name.value,
                                    sc.unwrap_or("(cluster default)"),
                                    prev.unwrap_or("(cluster default)"),
                                ),
                            )
                            .with_hint("give every disk on one datastore the same `storage_class`, or use `backend = \"cdi\"`"),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        // Forklift's vSphere adapter powers the source off with `ShutdownGuest` only
        // (kubev2v/forklift pkg/controller/plan/adapter/vsphere/client.go `PowerOff`): a
        // guest without VMware Tools fails the step with vCenter's `ToolsUnavailable`.
        if plan.source.shutdown != Shutdown::default() && plan.source.span != (0..0) {
            self.push(
                Diagnostic::warning(
                    "forklift-ignores-shutdown",
                    plan.source.span.clone(),
                    format!(
                        "[source] shutdown = \"{}\" is not applied on the Forklift backend: Forklift always asks VMware Tools to shut the guest down, and fails a VM without Tools (`ToolsUnavailable`)",
                        plan.source.shutdown.as_str()
                    ),
                )
                .with_hint("make sure every VM runs VMware Tools, or power such VMs off before their wave; or use `backend = \"cdi\"`"),
            );
        }
        // validation.go `VMMultiplePodNetworkMappings` (Critical): an L3 VM's networks all
        // map to the pod network, so a second NIC is a second pod-network interface.
        for vm in &plan.vms {
            if plan.model_of(vm) == NetworkModel::L3 && vm.nics.len() > 1 {
                self.push(
                    Diagnostic::error(
                        "forklift-l3-multiple-nics",
                        vm.name.span.clone(),
                        format!(
                            "L3 VM `{}` has {} NICs: on the Forklift backend each maps to the pod network, and Forklift refuses a VM with more than one interface there (VMMultiplePodNetworkMappings)",
                            vm.name.value,
                            vm.nics.len()
                        ),
                    )
                    .with_hint("give the VM `network_model = \"l2\"`, or one NIC; or use `backend = \"cdi\"`"),
                );
            }
        }
        for w in &plan.waves {
            if let Some(at) = &w.import_limits_span {
                self.push(
                    Diagnostic::warning(
                        "forklift-ignores-import-limits",
                        at.clone(),
                        format!(
                            "wave `{}`: `max_imports_per_host` and `max_imports_per_datastore` cannot be applied on the Forklift backend (Forklift schedules its own disk transfers)",
                            w.name.value
                        ),
                    )
                    .with_hint("Forklift limits transfers per provider with its `controller_max_vm_inflight` setting (ForkliftController); wavelift still applies `max_parallel_imports` and `max_parallel_cutovers` by Plan"),
                );
            }
        }
    }
}

fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.filter(|n| !n.is_empty()).take(8).collect();
    v.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A vSphere VM UUID (`source_id`): five groups of 8-4-4-4-12 hex digits. The inventory
/// import plans only VMs whose UUID passes this, so its skeletons never fail `bad-source-id`.
/// Whether [`Plan::checks_for`] of `vm` holds a check of `kind`, without building the list:
/// the VM's own checks, and the defaults an L3 VM does not drop.
fn has_check(plan: &Plan, vm: &Vm, kind: &CheckKind) -> bool {
    let l3 = plan.model_of(vm) == NetworkModel::L3;
    let dropped_for_l3 = matches!(kind, CheckKind::IpPreserved | CheckKind::MacPreserved);
    vm.checks.iter().any(|c| c.kind == *kind)
        || (!(l3 && dropped_for_l3) && plan.defaults.checks.iter().any(|d| d.kind == *kind))
}

/// Whether [`Plan::checks_for`] of `vm` is empty, without building it.
fn no_checks(plan: &Plan, vm: &Vm) -> bool {
    let l3 = plan.model_of(vm) == NetworkModel::L3;
    vm.checks.is_empty()
        && plan
            .defaults
            .checks
            .iter()
            .all(|d| l3 && matches!(d.kind, CheckKind::IpPreserved | CheckKind::MacPreserved))
}

/// The pieces joined, in one allocation of the exact size.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

pub(crate) fn is_uuid(s: &str) -> bool {
    // Five groups of 8-4-4-4-12 hex digits: `-` at 8, 13, 18 and 23, hex digits elsewhere.
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A datastore path (`backing_file`): `[datastore] folder/disk.vmdk`. The inventory import
/// plans only disks whose path passes this, so its skeletons never fail `bad-backing-file`.
pub(crate) fn is_backing_file(s: &str) -> bool {
    s.strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .is_some_and(|(ds, path)| {
            let p = path.as_bytes();
            !ds.is_empty() && p.len() >= 5 && p[p.len() - 5..].eq_ignore_ascii_case(b".vmdk")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VM's wave is looked up again only when it changes: an unknown wave is reported for
    /// every VM in it, whether it follows a known wave, itself, or comes first.
    #[test]
    fn unknown_waves_are_reported_for_every_vm_in_them() {
        let mut text = String::from(
            "[plan]\nname = \"p\"\nnamespace = \"n\"\n[source]\ntype = \"http\"\n\
             [[wave]]\nname = \"w1\"\n",
        );
        let waves = ["w9", "w1", "w1", "w9", "w9", "w1", "w8"];
        for (i, w) in waves.iter().enumerate() {
            text.push_str(&format!(
                "[[vm]]\nname = \"v{i}\"\nwave = \"{w}\"\ncpu = 1\nmemory = \"1Gi\"\n\
                 network_model = \"l3\"\n\
                 disks = [{{ url = \"https://x.example/a.img\", size = \"1Gi\" }}]\n"
            ));
        }
        let checked = crate::plan::check_str(&text, "p.toml");
        let unknown: Vec<&str> = checked
            .diagnostics
            .iter()
            .filter(|d| d.code == "unknown-wave")
            .map(|d| &text[d.span.clone()])
            .collect();
        assert_eq!(unknown, ["\"w9\"", "\"w9\"", "\"w9\"", "\"w8\""]);
    }

    /// `has_check` and `no_checks` answer what `Plan::checks_for` holds, for L2 and L3 VMs,
    /// with checks of their own, from the defaults, from both and from neither.
    #[test]
    fn check_questions_agree_with_checks_for() {
        let head = "[plan]\nname = \"p\"\nnamespace = \"n\"\n[source]\ntype = \"http\"\n\
                    [[wave]]\nname = \"w1\"\n";
        let kinds = [
            CheckKind::IpPreserved,
            CheckKind::MacPreserved,
            CheckKind::Icmp,
            CheckKind::Tcp { port: 22 },
        ];
        for defaults in ["", "[defaults]\nchecks = [\"ip-preserved\", \"icmp\"]\n"] {
            for model in ["l2", "l3"] {
                for own in [
                    "",
                    "checks = [\"mac-preserved\"]",
                    "checks = [\"icmp\", \"tcp:22\"]",
                ] {
                    let text = format!(
                        "{head}{defaults}[[vm]]\nname = \"a\"\nwave = \"w1\"\ncpu = 1\n\
                         memory = \"1Gi\"\nnetwork_model = \"{model}\"\n{own}\n\
                         disks = [{{ url = \"https://x.example/a.img\", size = \"1Gi\" }}]\n"
                    );
                    let (root, errors) = crate::toml_spans::parse(&text);
                    assert!(errors.is_empty(), "{text}");
                    let plan = super::super::read::Reader::new().read(root);
                    let vm = &plan.vms[0];
                    let list = plan.checks_for(vm);
                    assert_eq!(no_checks(&plan, vm), list.is_empty(), "{text}");
                    for kind in &kinds {
                        assert_eq!(
                            has_check(&plan, vm, kind),
                            list.iter().any(|c| c.kind == *kind),
                            "{kind} in {text}"
                        );
                    }
                }
            }
        }
    }

    /// The byte-wise checks agree with their plain definitions (split on `-`; lowercase and
    /// compare the suffix), which they replaced to spare an allocation per VM.
    #[test]
    fn uuid_and_backing_file_agree_with_their_definitions() {
        let uuid_def = |s: &str| {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 5
                && parts
                    .iter()
                    .zip([8, 4, 4, 4, 12])
                    .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
        };
        for s in [
            "4207c1b2-5f0e-4c1e-9a7b-0123456789ab",
            "4207C1B2-5F0E-4C1E-9A7B-0123456789AB",
            "4207c1b2-5f0e-4c1e-9a7b-0123456789a",
            "4207c1b2-5f0e-4c1e-9a7b-0123456789abc",
            "4207c1b25f0e-4c1e-9a7b--0123456789ab",
            "4207c1b2-5f0e-4c1e-9a7b-0123456789ag",
            "4207c1b2-5f0e-4c1e-9a7b-01234567é9a",
            "4207c1b2_5f0e-4c1e-9a7b-0123456789ab",
            "------------------------------------",
            "",
        ] {
            assert_eq!(is_uuid(s), uuid_def(s), "{s}");
        }
        let backing_def = |s: &str| {
            s.strip_prefix('[')
                .and_then(|r| r.split_once("] "))
                .is_some_and(|(ds, path)| {
                    !ds.is_empty() && path.to_ascii_lowercase().ends_with(".vmdk")
                })
        };
        for s in [
            "[ds1] vm/vm.vmdk",
            "[ds1] vm/VM.VMDK",
            "[ds1] .vmdk",
            "[ds1] vmdk",
            "[] vm/vm.vmdk",
            "ds1] vm/vm.vmdk",
            "[ds1]vm/vm.vmdk",
            "[ds1] vm/vm.vmdké",
            "[ds1] é.Vmdk",
            "[ds1] ",
        ] {
            assert_eq!(is_backing_file(s), backing_def(s), "{s}");
        }
    }
}
