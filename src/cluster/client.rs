//! Which cluster to talk to: a kubeconfig context (like kubectl: `KUBECONFIG`, `--context`,
//! the plan's `context`, the current context, in-cluster config), or the embedded sim when no
//! kubeconfig exists or `--sim` is given.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where the run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The embedded rehearsal cluster, started in-process.
    Sim,
    /// A kubeconfig context (`None`: the current context).
    Context(Option<String>),
}

/// What a run does to its cluster (shown in headers, prompts and summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Changes a real cluster.
    Live,
    /// Every request with `dryRun=All`.
    DryRun,
    /// The rehearsal cluster (embedded, or `wavelift sim serve`).
    Rehearsal,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Live => "LIVE",
            Mode::DryRun => "DRY-RUN",
            Mode::Rehearsal => "REHEARSAL",
        }
    }
}

/// Decides the target: `--sim` wins, then `--context`; with no kubeconfig anywhere (and not
/// in a pod) the sim, even when the plan names a context (a rehearsal cannot reach it
/// anyway, and the UI says REHEARSAL); otherwise the plan's `context` or the current one.
pub fn choose_target(sim: bool, context: Option<&str>, plan_context: Option<&str>) -> Target {
    if sim {
        return Target::Sim;
    }
    if let Some(c) = context {
        return Target::Context(Some(c.to_string()));
    }
    if !(kubeconfig_exists() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()) {
        return Target::Sim;
    }
    Target::Context(plan_context.map(str::to_string))
}

fn kubeconfig_exists() -> bool {
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&paths).any(|p| p.is_file());
    }
    dirs::home_dir().is_some_and(|h| h.join(".kube").join("config").is_file())
}

/// A connected cluster: the client, the context's name and the API server URL.
pub struct Connection {
    pub client: Client,
    pub context: String,
    pub url: String,
}

/// A client for a kubeconfig context (or in-cluster config when no kubeconfig exists).
pub async fn connect(context: Option<&str>) -> anyhow::Result<Connection> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let (config, name) = match Kubeconfig::read() {
        Ok(kc) => {
            let name = context
                .map(str::to_string)
                .or_else(|| kc.current_context.clone())
                .unwrap_or_else(|| "default".to_string());
            (Config::from_custom_kubeconfig(kc, &options).await?, name)
        }
        Err(_) => (Config::incluster()?, "in-cluster".to_string()),
    };
    let url = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    Ok(Connection {
        client: Client::try_from(config)?,
        context: name,
        url,
    })
}

/// Whether the API server is wavelift's rehearsal cluster (`wavelift sim serve`).
pub async fn is_sim(client: &Client) -> bool {
    client
        .apiserver_version()
        .await
        .is_ok_and(|v| v.git_version.contains("wavelift-sim"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_win() {
        assert_eq!(choose_target(true, Some("prod"), None), Target::Sim);
        assert_eq!(
            choose_target(false, Some("prod"), Some("plan")),
            Target::Context(Some("prod".into()))
        );
    }
}
