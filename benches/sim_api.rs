//! Sim API benchmark (plain `harness = false` binary; `cargo bench --bench sim_api`):
//! GETs per second over loopback with a kube-rs client (sequential and 16 concurrent
//! clients), watch fan-out to 100 concurrent watchers, and resident memory with 10,000
//! VirtualMachine objects. Prints medians of several rounds.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use wavelift::sim::{self, SimOptions, StoreOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn vm(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": format!("vm-{i:05}"), "namespace": "default",
                     "labels": {"wavelift.io/plan": "bench", "wavelift.io/wave": "w1", "wavelift.io/vm": format!("vm-{i:05}")}},
        "spec": {"runStrategy": "Halted", "template": {"spec": {
            "domain": {"devices": {
                "disks": [{"name": "disk0", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "vlan210", "bridge": {}, "macAddress": "00:50:56:ab:cd:01"}]},
                "memory": {"guest": "4Gi"}},
            "networks": [{"name": "vlan210", "multus": {"networkName": "default/vlan-210"}}],
            "volumes": [{"name": "disk0", "dataVolume": {"name": format!("vm-{i:05}-disk0")}}]}}}
    })
}

async fn gets_per_second(api: &Api<Secret>, clients: usize, per_client: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                api.get("bench").await.expect("get");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (clients * per_client) as f64 / start.elapsed().as_secs_f64()
}

async fn fan_out(api: &Api<Secret>, watchers: usize, events: usize, round: usize) -> Duration {
    let rv = api
        .list_metadata(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let stream = api
            .watch(&WatchParams::default().timeout(120), &rv)
            .await
            .expect("watch");
        tasks.push(tokio::spawn(async move {
            futures::pin_mut!(stream);
            let mut seen = 0;
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Added(_)) = ev {
                    seen += 1;
                    if seen == events {
                        break;
                    }
                }
            }
            seen
        }));
    }
    let start = Instant::now();
    for i in 0..events {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("fan-{round}-{i}")}
        }))
        .expect("secret");
        api.create(&PostParams::default(), &s)
            .await
            .expect("create");
    }
    for t in tasks {
        let seen = t.await.expect("watcher");
        assert_eq!(seen, events, "every watcher receives every event");
    }
    start.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sim = sim::start(SimOptions {
            store: StoreOptions {
                history_limit: 1000,
                channel_capacity: 8192,
            },
            ..SimOptions::default()
        })
        .await
        .expect("sim");
        let api: Api<Secret> = Api::namespaced(sim.client(), "default");
        let s: Secret = serde_json::from_value(json!({"metadata": {"name": "bench"}, "stringData": {"k": "v"}})).expect("secret");
        api.create(&PostParams::default(), &s).await.expect("create");
        gets_per_second(&api, 1, 500).await; // warm-up

        let seq: Vec<f64> = {
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(gets_per_second(&api, 1, 3000).await);
            }
            v
        };
        println!("GET, 1 client:    median {:>8.0} GETs/s (5 rounds of 3000)", median(seq));
        let conc: Vec<f64> = {
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(gets_per_second(&api, 16, 500).await);
            }
            v
        };
        println!("GET, 16 clients:  median {:>8.0} GETs/s (5 rounds of 16x500)", median(conc));

        let mut fan = Vec::new();
        for round in 0..3 {
            fan.push(fan_out(&api, 100, 200, round).await.as_secs_f64());
        }
        let m = median(fan);
        println!(
            "watch fan-out:    100 watchers x 200 events, all delivered; median {:.1} ms ({:.0} event deliveries/s)",
            m * 1000.0,
            (100.0 * 200.0) / m
        );

        let before = rss_kib();
        for i in 0..10_000 {
            sim::seed_object(sim.store(), vm(i)).expect("seed");
        }
        let after = rss_kib();
        println!(
            "memory:           10,000 VirtualMachines add {:.1} MiB RSS (process {:.1} MiB)",
            (after.saturating_sub(before)) as f64 / 1024.0,
            after as f64 / 1024.0
        );
        let vms: Api<kube::api::DynamicObject> = Api::namespaced_with(
            sim.client(),
            "default",
            &kube::api::ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
                "virtualmachines",
            ),
        );
        let mut lists = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let l = vms
                .list(&kube::api::ListParams::default().labels("wavelift.io/vm=vm-00042"))
                .await
                .expect("list");
            assert_eq!(l.items.len(), 1);
            lists.push(t.elapsed().as_secs_f64());
        }
        println!(
            "label-selected list over 10,000 VMs: median {:.1} ms",
            median(lists) * 1000.0
        );
        sim.shutdown().await;
    });
}
