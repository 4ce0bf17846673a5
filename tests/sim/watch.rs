//! Watches against the in-process sim: kube-rs watcher + reflector sync, resume from a
//! resourceVersion, 410 Expired and the watcher's relist, bookmarks, timeouts, filters.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;
use wavelift::sim::{self, SimHandle, SimOptions, StoreOptions};

async fn sim_with(store: StoreOptions) -> SimHandle {
    sim::start(SimOptions {
        store,
        bookmark_interval: Duration::from_millis(200),
        ..SimOptions::default()
    })
    .await
    .expect("sim starts")
}

fn secret(name: &str, labels: serde_json::Value) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "stringData": {"k": "v"}
    }))
    .expect("secret")
}

/// Poll `cond` until it holds or the deadline passes (waiting on a server-side condition).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reflector_sees_add_modify_delete() {
    let sim = sim_with(StoreOptions::default()).await;
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    let (reader, writer) = reflector::store::<Secret>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("ready");

    api.create(&PostParams::default(), &secret("one", json!({"a": "1"})))
        .await
        .expect("create");
    eventually("add", || {
        reader
            .get(&reflector::ObjectRef::new("one").within("default"))
            .is_some()
    })
    .await;

    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "2"}}})),
    )
    .await
    .expect("patch");
    eventually("modify", || {
        reader
            .get(&reflector::ObjectRef::new("one").within("default"))
            .is_some_and(|s| s.labels().get("a").map(String::as_str) == Some("2"))
    })
    .await;

    api.delete("one", &Default::default())
        .await
        .expect("delete");
    eventually("delete", || reader.is_empty()).await;
    task.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn dynamic_reflector_with_label_selector() {
    let sim = sim_with(StoreOptions::default()).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &ar);
    let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
    let reader = writer.as_reader();
    let stream = reflector(
        writer,
        watcher(
            api.clone(),
            watcher::Config::default().labels("wavelift.io/plan=p1"),
        ),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("ready");
    let nad = |name: &str, plan: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "labels": {"wavelift.io/plan": plan}},
            "spec": {"config": "{\"cniVersion\":\"0.3.1\",\"type\":\"bridge\",\"ipam\":{}}"}
        }))
        .expect("nad")
    };
    api.create(&PostParams::default(), &nad("in-plan", "p1"))
        .await
        .expect("create");
    api.create(&PostParams::default(), &nad("other-plan", "p2"))
        .await
        .expect("create");
    eventually("the plan's NAD", || reader.state().len() == 1).await;
    // Relabelling out of the selector looks like a delete to a filtered watch.
    api.patch(
        "in-plan",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"wavelift.io/plan": "p3"}}})),
    )
    .await
    .expect("relabel");
    eventually("relabelled NAD leaves", || reader.is_empty()).await;
    task.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_from_zero_sends_current_objects_then_bookmark_at_timeout() {
    let sim = sim_with(StoreOptions::default()).await;
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    api.create(&PostParams::default(), &secret("pre", json!({})))
        .await
        .expect("create");
    let events: Vec<WatchEvent<Secret>> = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("stream ends cleanly at the timeout");
    assert!(matches!(events.first(), Some(WatchEvent::Added(s)) if s.name_any() == "pre"));

    let bm: Vec<WatchEvent<Secret>> = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("stream ends");
    assert!(
        matches!(bm.last(), Some(WatchEvent::Bookmark(_))),
        "bookmark at the end"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_expires() {
    let sim = sim_with(StoreOptions {
        history_limit: 5,
        channel_capacity: 1024,
    })
    .await;
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    let first = api
        .create(&PostParams::default(), &secret("s0", json!({})))
        .await
        .expect("create");
    let rv0 = first.resource_version().expect("rv");
    api.create(&PostParams::default(), &secret("s1", json!({})))
        .await
        .expect("create");
    let resumed: Vec<WatchEvent<Secret>> = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv0)
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(resumed.len(), 1, "only what happened after rv0");
    assert!(matches!(&resumed[0], WatchEvent::Added(s) if s.name_any() == "s1"));

    for i in 2..12 {
        api.create(&PostParams::default(), &secret(&format!("s{i}"), json!({})))
            .await
            .expect("create");
    }
    let expired: Vec<WatchEvent<Secret>> = api
        .watch(&WatchParams::default().timeout(1), &rv0)
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("stream");
    match expired.as_slice() {
        [WatchEvent::Error(e)] => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn watcher_relists_after_410_and_converges() {
    // A tiny broadcast channel and history: a watcher that cannot keep up is told its
    // resourceVersion expired and must relist.
    let sim = sim_with(StoreOptions {
        history_limit: 2,
        channel_capacity: 2,
    })
    .await;
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    let (reader, writer) = reflector::store::<Secret>();
    let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).default_backoff();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                let _ = err_tx.send(e.to_string());
            }
        }
    });
    reader.wait_until_ready().await.expect("ready");
    // A burst of writes in one synchronous stretch: on this single-threaded test runtime
    // the server's watch task cannot run in between, so it lags the channel.
    for i in 0..40 {
        sim::seed_object(
            sim.store(),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": format!("burst-{i}"), "namespace": "default"}}),
        )
        .expect("seed");
    }
    eventually("the reflector to converge on 40 secrets", || {
        reader.state().len() == 40
    })
    .await;
    let mut errors = Vec::new();
    while let Ok(e) = err_rx.try_recv() {
        errors.push(e);
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains("xpired") || e.contains("410")),
        "the watcher saw a 410: {errors:?}"
    );
    task.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn watcher_survives_server_ended_watches() {
    // Every watch ends after 200 ms, as real API servers end watches after a while.
    let sim = sim::start(SimOptions {
        watch_max_duration: Some(Duration::from_millis(200)),
        ..SimOptions::default()
    })
    .await
    .expect("sim starts");
    let secrets = wavelift::sim::resources::find("", "v1", "secrets").expect("secrets");
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    let (reader, writer) = reflector::store::<Secret>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("ready");
    api.create(&PostParams::default(), &secret("before", json!({})))
        .await
        .expect("create");
    let started = sim.store().watches_started(secrets);
    eventually("the watcher to re-watch twice", || {
        sim.store().watches_started(secrets) >= started + 2
    })
    .await;
    api.create(&PostParams::default(), &secret("after", json!({})))
        .await
        .expect("create");
    eventually("both secrets", || reader.state().len() == 2).await;
    task.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_syncs() {
    let sim = sim_with(StoreOptions::default()).await;
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    api.create(&PostParams::default(), &secret("existing", json!({})))
        .await
        .expect("create");
    let (reader, writer) = reflector::store::<Secret>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().streaming_lists()),
    )
    .default_backoff()
    .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("initial events end");
    assert_eq!(reader.state().len(), 1);
    api.create(&PostParams::default(), &secret("new", json!({})))
        .await
        .expect("create");
    eventually("the new secret", || reader.state().len() == 2).await;
    task.abort();
    sim.shutdown().await;
}
