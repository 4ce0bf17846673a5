//! Simulated controllers of the rehearsal cluster: CDI imports, the KubeVirt VM/VMI
//! lifecycle and live migrations, the kubelet that runs pods (probe pods), plus the world outside Kubernetes (vSphere source VMs and
//! the network that answers probes). The controllers are kube-rs clients of the API, like
//! the real ones; scenarios ([`scenario`]) set speed, sizes and faults.

pub mod cdi;
pub mod disks;
pub mod endpoints;
pub mod forklift;
pub mod kubelet;
pub mod kubevirt;
pub mod placement;
pub mod policy;
pub mod rehearsal;
pub mod scenario;
pub mod vim;
pub mod vsphere;
pub mod world;

use scenario::Scenario;
use std::sync::Arc;
use std::time::Duration;
use world::World;

/// Simulated time: `speed` simulated seconds pass per real second.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    pub speed: f64,
}

impl SimClock {
    /// Sleeps `sim_secs` of simulated time.
    pub async fn sleep(&self, sim_secs: f64) {
        let real = (sim_secs / self.speed).clamp(0.0, 3600.0);
        tokio::time::sleep(Duration::from_secs_f64(real)).await;
    }

    /// Sleeps real time (progress ticks).
    pub async fn sleep_real(&self, secs: f64) {
        tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
    }
}

/// The running controllers; dropping it stops them.
pub struct Controllers {
    pub world: Arc<World>,
    /// Imports in flight and the peak (for concurrency assertions).
    pub imports: Arc<cdi::ImportRecord>,
    pub stores: kubevirt::Stores,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts every simulated controller against `client`.
pub fn spawn(client: kube::Client, scenario: Scenario) -> Controllers {
    let scenario = Arc::new(scenario);
    let clock = SimClock {
        speed: scenario.speed,
    };
    let world = Arc::new(World::new(&scenario));
    let (stores, mut tasks, keys) = kubevirt::reflectors(&client, world.clone());
    let imports = Arc::new(cdi::ImportRecord::default());
    tasks.push(tokio::spawn(cdi::run(
        client.clone(),
        scenario.clone(),
        clock,
        imports.clone(),
        world.clone(),
    )));
    tasks.push(tokio::spawn(kubevirt::run_vms(
        client.clone(),
        scenario.clone(),
        world.clone(),
        clock,
        stores.clone(),
        keys,
    )));
    tasks.push(tokio::spawn(kubelet::run(
        client.clone(),
        scenario.clone(),
        world.clone(),
        clock,
    )));
    tasks.push(tokio::spawn(policy::run(
        client.clone(),
        world.policy.clone(),
    )));
    tasks.push(tokio::spawn(kubevirt::run_migrations(
        client,
        scenario,
        clock,
        stores.clone(),
    )));
    Controllers {
        world,
        imports,
        stores,
        tasks,
    }
}
