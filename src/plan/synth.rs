//! Synthetic plans of any size, for benchmarks and scale tests (`plan check` of 10,000 VMs,
//! the TUI's 5,000-VM frame, the sim's 1,000-VM wave). Addresses are 10.x: such plans only
//! ever run against the embedded sim.

use std::fmt::Write;

/// Shape of a synthetic plan.
#[derive(Debug, Clone, Copy)]
pub struct SynthSpec {
    pub vms: usize,
    pub waves: usize,
    pub networks: usize,
    /// Every `l3_every`-th VM is L3 (0 = none).
    pub l3_every: usize,
}

impl SynthSpec {
    pub fn new(vms: usize) -> Self {
        SynthSpec {
            vms,
            waves: vms.div_ceil(2_000).max(1),
            networks: vms.div_ceil(250).clamp(1, 200),
            l3_every: 10,
        }
    }
}

/// Generates a valid plan (vsphere source) as TOML text.
pub fn generate(spec: SynthSpec) -> String {
    let mut s = String::with_capacity(spec.vms * 420 + 4096);
    s.push_str(
        "[plan]\nname = \"synthetic\"\nnamespace = \"mig-synthetic\"\nnetwork_model = \"l2\"\n\n\
         [source]\ntype = \"vsphere\"\nurl = \"https://vcenter.example.internal\"\n\
         credentials_secret = \"vsphere-creds\"\n\
         thumbprint = \"20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3\"\n\
         vddk_init_image = \"registry.example.internal/vddk-init:8.0.3\"\n\n\
         [defaults]\nstorage_class = \"sim-standard\"\naccess_mode = \"ReadWriteOnce\"\n\
         checks = [\"ip-preserved\", \"mac-preserved\", \"icmp\"]\n",
    );
    for n in 0..spec.networks {
        let _ = write!(
            s,
            "\n[[network]]\nname = \"vlan-{v}\"\nvlan = {v}\nprovider = \"bridge\"\nbridge = \"br-trunk\"\n\
             cidr = \"10.{a}.{b}.0/22\"\ngateway = \"10.{a}.{b}.1\"\nowner = \"netops\"\n",
            v = 100 + n,
            a = n / 64,
            b = (n % 64) * 4,
        );
    }
    for w in 0..spec.waves {
        let _ = write!(
            s,
            "\n[[wave]]\nname = \"w{w}\"\nwindow = {{ start = 2026-12-{d:02}T22:00:00Z, end = 2026-12-{e:02}T04:00:00Z }}\n\
             max_parallel_imports = 8\nmax_parallel_cutovers = 4\n",
            d = 1 + w % 27,
            e = 2 + w % 27,
        );
    }
    let per_wave = spec.vms.div_ceil(spec.waves);
    for i in 0..spec.vms {
        let net = i % spec.networks;
        let host = 10 + i / spec.networks; // up to ~1000 hosts per /22
        let ip = format!(
            "10.{}.{}.{}",
            net / 64,
            (net % 64) * 4 + host / 256,
            host % 256
        );
        let wave = i / per_wave;
        let l3 = spec.l3_every > 0 && i % spec.l3_every == spec.l3_every - 1;
        let _ = write!(
            s,
            "\n[[vm]]\nname = \"vm-{i:05}\"\nwave = \"w{wave}\"\nsource_id = \"4207c1b2-5f0e-4c1e-9a7b-{i:012x}\"\n\
             cpu = {cpu}\nmemory = \"{mem}Gi\"\n{model}nics = [{{ network = \"vlan-{v}\", ip = \"{ip}\", mac = \"00:50:56:{m1:02x}:{m2:02x}:{m3:02x}\" }}]\n\
             disks = [{{ backing_file = \"[ds{ds}] vm-{i:05}/vm-{i:05}.vmdk\", size = \"{size}Gi\" }}]\n\
             checks = [\"tcp:{port}\"]\n",
            cpu = 1 << (i % 4),
            mem = 2 << (i % 4),
            // An L3 VM gets a new address on the pod network: its checks can only find it
            // through the guest agent's report (without one they probe the old IP and fail,
            // and a failed VM keeps its cutover slot: a synthetic wave would stall).
            model = if l3 {
                "network_model = \"l3\"\nguest_agent = true\n"
            } else {
                ""
            },
            v = 100 + net,
            m1 = 0x80 | ((i >> 16) & 0x3f),
            m2 = (i >> 8) & 0xff,
            m3 = i & 0xff,
            ds = i % 8,
            size = 20 + (i % 10) * 10,
            port = [22, 443, 5432, 8080][i % 4],
        );
        if i % per_wave != 0 && i % 5 == 0 {
            let _ = writeln!(s, "after = [\"vm-{:05}\"]", i - 1);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_plans_are_valid() {
        for n in [1, 3, 250, 2_500] {
            let text = generate(SynthSpec::new(n));
            let c = crate::plan::check_str(&text, "synthetic.toml");
            let errs: Vec<String> = c
                .located()
                .iter()
                .filter(|d| d.severity == crate::plan::Severity::Error)
                .take(3)
                .map(|d| d.render_text())
                .collect();
            assert!(errs.is_empty(), "{n} VMs:\n{}", errs.join("\n"));
            assert_eq!(c.plan.expect("valid").vms.len(), n);
        }
    }
}
