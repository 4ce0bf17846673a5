//! Hostile and broken clients against the in-process sim (issue 18, item 5): every limit
//! answers the `Status` the real API server answers, memory stays within the store's
//! accounted bounds, a connection flood does not lock other clients out, and the wrong
//! successes the adversarial pass found are refused. Each test names the upstream code it
//! holds the sim to; src/sim says where each limit is set.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wavelift::sim::{self, resources, store, SimHandle, SimOptions};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const NADS: &str = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions";

async fn sim() -> SimHandle {
    sim::start(SimOptions::default()).await.expect("sim starts")
}

fn nad_ar() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

fn nad(name: &str, padding: usize) -> Value {
    let config = json!({"cniVersion": "0.3.1", "type": "bridge", "pad": "x".repeat(padding)});
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"config": config.to_string()},
    })
}

fn req(method: &str, path: &str, ct: &str, body: Vec<u8>) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body)
        .expect("request")
}

/// The Status an erroring request answers.
async fn status(client: &Client, r: http::Request<Vec<u8>>) -> Box<Status> {
    let what = format!("{} {}", r.method(), r.uri());
    match client.request_text(r).await {
        Err(kube::Error::Api(s)) => s,
        other => panic!("{what}: expected an error Status, got {other:?}"),
    }
}

async fn ok_json(client: &Client, r: http::Request<Vec<u8>>) -> Value {
    let what = format!("{} {}", r.method(), r.uri());
    let text = client
        .request_text(r)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    serde_json::from_str(&text).expect("json")
}

fn rv(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .expect("a resourceVersion")
        .to_string()
}

/// Poll a server-side condition until it holds (bounded; not a timing assertion).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Object size

/// A body over `MaxRequestBodyBytes` (3 MiB) is 413 RequestEntityTooLarge with
/// `limitedReadBody`'s message (apiserver pkg/endpoints/handlers/rest.go); an object over
/// etcd's 1.5 MiB request limit is the 500 "etcdserver: request is too large" the API
/// server passes through from etcd (no reason: it is not a Status error), on create and on
/// update, and nothing is stored; annotations over 256 KiB and Secret data over 1 MiB are
/// 422 as ObjectMeta and Secret validation answer.
#[tokio::test]
async fn oversized_bodies_objects_annotations_and_secrets_are_refused() {
    let sim = sim().await;
    let client = sim.client();

    let body = vec![b' '; 3 * 1024 * 1024 + 1];
    let s = status(&client, req("POST", SECRETS, "application/json", body)).await;
    assert_eq!((s.code, s.reason.as_str()), (413, "RequestEntityTooLarge"));
    assert_eq!(s.message, "Request entity too large: limit is 3145728");

    let big = nad("big", store::MAX_OBJECT_BYTES);
    let body = serde_json::to_vec(&big).expect("json");
    assert!(body.len() < 3 * 1024 * 1024, "under the body limit");
    let s = status(&client, req("POST", NADS, "application/json", body)).await;
    assert_eq!((s.code, s.reason.as_str()), (500, ""));
    assert_eq!(s.message, "etcdserver: request is too large");
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &nad_ar());
    assert!(nads.get_opt("big").await.expect("get").is_none());

    let small = ok_json(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            nad("grows", 10).to_string().into_bytes(),
        ),
    )
    .await;
    let grow = json!({"spec": {"config": nad("x", store::MAX_OBJECT_BYTES)["spec"]["config"]}});
    let s = status(
        &client,
        req(
            "PATCH",
            &format!("{NADS}/grows"),
            "application/merge-patch+json",
            grow.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!(
        (s.code, s.message.as_str()),
        (500, "etcdserver: request is too large")
    );
    let now = nads.get("grows").await.expect("get");
    assert_eq!(now.resource_version(), Some(rv(&small)), "unchanged");

    let mut annotated = nad("annotated", 10);
    annotated["metadata"]["annotations"] = json!({"big": "a".repeat(256 * 1024)});
    let s = status(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            annotated.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let cause = &s.details.as_ref().expect("details").causes[0];
    assert_eq!(
        (
            cause.field.as_str(),
            cause.reason.as_str(),
            cause.message.as_str()
        ),
        (
            "metadata.annotations",
            "FieldValueTooLong",
            "Too long: may not be more than 262144 bytes"
        )
    );

    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "huge"}, "stringData": {"k": "s".repeat(1024 * 1024 + 1)}});
    let s = status(
        &client,
        req(
            "POST",
            SECRETS,
            "application/json",
            secret.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let cause = &s.details.as_ref().expect("details").causes[0];
    assert_eq!(
        (cause.field.as_str(), cause.message.as_str()),
        ("data", "Too long: may not be more than 1048576 bytes")
    );
    sim.shutdown().await;
}

/// The store as a whole is bounded like etcd's backend (`--quota-backend-bytes`, shrunk
/// here): a write that would grow it past the quota is etcd's "database space exceeded",
/// a 500 from the API server; deletes go through and make room again. A LIST of the lot
/// goes out with its length, built from the stored objects without copying them.
#[tokio::test]
async fn the_store_quota_refuses_growth_but_not_deletes() {
    let sim = sim::start(SimOptions {
        limits: store::StoreLimits {
            quota_bytes: 256 * 1024,
            ..store::StoreLimits::default()
        },
        ..SimOptions::default()
    })
    .await
    .expect("sim starts");
    let client = sim.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let filler = |i: usize| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": format!("fill-{i}")},
            "data": {"x": "f".repeat(40 * 1024)}}))
        .expect("cm")
    };
    let mut made = 0;
    let refused = loop {
        match cms.create(&PostParams::default(), &filler(made)).await {
            Ok(_) => made += 1,
            Err(kube::Error::Api(s)) => break s,
            Err(e) => panic!("{e}"),
        }
        assert!(made < 100, "the quota never bit");
    };
    assert!(made >= 3, "{made} made before the quota");
    assert_eq!(
        (
            refused.code,
            refused.reason.as_str(),
            refused.message.as_str()
        ),
        (500, "", "etcdserver: mvcc: database space exceeded")
    );
    assert!(sim.store().object_bytes() <= sim.store().limits().quota_bytes);

    let listing = raw_http(
        sim.addr,
        "GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!(listing.0, 200);
    // Not chunked: the body is the list itself.
    let list: Value = serde_json::from_str(&listing.1).expect("a list with its length");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(made));

    cms.delete("fill-0", &Default::default())
        .await
        .expect("deletes go through");
    cms.create(&PostParams::default(), &filler(1000))
        .await
        .expect("room again");
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// YAML aliases

/// Anchors and aliases may not expand a document past the request body limit, counted as
/// the value is built (each alias each time it is replayed): a 2 MiB body that would
/// expand to 64 MiB, and a nested "billion laughs", are refused (400, as sigs.k8s.io/yaml's
/// "excessive aliasing") having built no more than the limit, and nothing is stored. A
/// document that uses aliases within the limit still parses.
#[tokio::test]
async fn yaml_alias_bombs_are_bounded_by_what_they_expand_to() {
    let limit = 3 * 1024 * 1024;
    let scalar = "y".repeat(2 * 1024 * 1024 - 4096);
    let mut wide = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wide\nbig: &b \"{scalar}\"\ncopies:\n"
    );
    for _ in 0..32 {
        wide.push_str("- *b\n");
    }
    assert!(wide.len() < limit);
    match sim::patch::parse_yaml(&wide, limit) {
        Err(sim::patch::YamlError::Expands(n)) => assert_eq!(n, limit),
        other => panic!("expected the expansion limit, got {other:?}"),
    }
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
        let refs = vec![format!("*{prev}"); 10].join(",");
        laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    assert!(matches!(
        sim::patch::parse_yaml(&laughs, limit),
        Err(sim::patch::YamlError::Expands(_))
    ));
    let fine = "base: &b {x: \"1\"}\none: *b\ntwo: *b\n";
    assert_eq!(
        sim::patch::parse_yaml(fine, limit).expect("within the limit"),
        json!({"base": {"x": "1"}, "one": {"x": "1"}, "two": {"x": "1"}})
    );

    let sim = sim().await;
    let client = sim.client();
    let configmaps = resources::find("", "v1", "configmaps").expect("served");
    let before = sim.store().usage(configmaps);
    for (path, method, ct) in [
        (
            "/api/v1/namespaces/default/configmaps".to_string(),
            "POST",
            "application/yaml",
        ),
        (
            "/api/v1/namespaces/default/configmaps/wide?fieldManager=m".to_string(),
            "PATCH",
            "application/apply-patch+yaml",
        ),
    ] {
        let s = status(&client, req(method, &path, ct, wide.clone().into_bytes())).await;
        assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{method}");
        assert_eq!(
            s.message,
            "yaml: document contains excessive aliasing: it expands past 3145728 bytes"
        );
    }
    assert_eq!(sim.store().usage(configmaps), before, "nothing stored");
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Watch history and new watches

/// 40 updates of a 1.4 MB object (each event ~2.8 MB with its previous version) keep the
/// history within its 64 MiB per resource, as the store accounts it; a watch from before
/// the compacted window is told 410 Expired (what etcd compaction and the watch cache
/// answer), one from the latest resourceVersion sees the next change. Deleting the object
/// frees its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_history_is_bounded_by_bytes_and_compacted_versions_expire() {
    let sim = sim().await;
    let res =
        resources::find("k8s.cni.cncf.io", "v1", "network-attachment-definitions").expect("served");
    let padding = 1_400_000;
    let created = sim::seed_object(sim.store(), nad("heavy", padding)).expect("seed");
    let first_rv = rv(&created);
    for i in 0..40 {
        sim.store()
            .mutate(
                res,
                "default",
                "heavy",
                store::Part::Main,
                &store::WriteOptions::default(),
                |cur| {
                    let mut next = cur.cloned().expect("exists");
                    next["metadata"]["labels"] = json!({"round": i.to_string()});
                    Ok(next)
                },
            )
            .expect("update");
    }
    let usage = sim.store().usage(res);
    assert!(
        usage.history_bytes <= store::HISTORY_BYTES,
        "history {} bytes over the {} limit",
        usage.history_bytes,
        store::HISTORY_BYTES
    );
    assert!(
        usage.history_events < 41,
        "older events were compacted: {usage:?}"
    );
    assert!(usage.history_bytes > store::HISTORY_BYTES / 2, "{usage:?}");
    assert!(usage.compacted_rv > first_rv.parse().expect("numeric"));

    let nads: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &nad_ar());
    let expired: Vec<WatchEvent<DynamicObject>> = nads
        .watch(&WatchParams::default().timeout(5), &first_rv)
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("stream");
    match expired.as_slice() {
        [WatchEvent::Error(e)] => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected one 410 ERROR event, got {} events", other.len()),
    }

    let latest = rv(&sim.store().get(res, "default", "heavy").expect("exists"));
    let mut live = nads
        .watch(&WatchParams::default().timeout(30), &latest)
        .await
        .expect("watch")
        .boxed();
    nads.patch(
        "heavy",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"round": "last"}}})),
    )
    .await
    .expect("patch");
    match live.try_next().await.expect("event") {
        Some(WatchEvent::Modified(o)) => assert_eq!(o.labels()["round"], "last"),
        other => panic!("expected the change, got {other:?}"),
    }
    drop(live);

    sim.store()
        .delete(
            res,
            "default",
            "heavy",
            (None, None),
            &store::WriteOptions::default(),
        )
        .expect("delete");
    assert_eq!(
        sim.store().usage(res).object_bytes,
        0,
        "the object's bytes are freed"
    );
    sim.shutdown().await;
}

/// A new watch takes the resource's objects as one shared snapshot (the same map, the
/// same serialised objects: nothing is copied), a write after it does not show up in its
/// initial objects but once, after them, from the history; and many watches nobody reads
/// hold no writer up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_watches_share_one_snapshot_and_block_no_writer() {
    let sim = sim().await;
    let secrets_res = resources::find("", "v1", "secrets").expect("served");
    for i in 0..300 {
        sim::seed_object(
            sim.store(),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": format!("s{i:03}"), "namespace": "default"}}),
        )
        .expect("seed");
    }
    let (a, _) = sim.store().snapshot(secrets_res);
    let (b, _) = sim.store().snapshot(secrets_res);
    assert!(std::sync::Arc::ptr_eq(&a, &b), "one map, shared");
    let (listed, _) = sim.store().list(secrets_res, Some("default"), |_| true);
    assert!(listed
        .iter()
        .all(|o| a.values().any(|s| std::sync::Arc::ptr_eq(s, o))));
    drop((a, b));

    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    // Twenty watches from "now", opened and never read.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(
            api.watch(&WatchParams::default().timeout(60), "0")
                .await
                .expect("watch"),
        );
    }
    let mut watch = api
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .expect("watch")
        .boxed();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "zz-after"}})).expect("secret"),
    )
    .await
    .expect("a write while 21 watches hold their snapshots");
    let mut names = Vec::new();
    while names.len() < 301 {
        match watch.try_next().await.expect("event") {
            Some(WatchEvent::Added(s)) => names.push(s.name_any()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names.last().map(String::as_str), Some("zz-after"));
    assert_eq!(names.iter().filter(|n| *n == "zz-after").count(), 1);
    assert_eq!(names[..300], {
        let mut sorted = names[..300].to_vec();
        sorted.sort();
        sorted
    });
    drop(idle);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// timeoutSeconds

/// `timeoutSeconds` is an int64 to the API server's parameter codec: 2^64-1 is 400 with
/// strconv's message (it used to panic the watch task, ending the stream silently); the
/// largest int64 is a watch that does not end; a negative one ends at once.
#[tokio::test]
async fn watch_timeouts_overflowing_int64_are_400_and_huge_ones_do_not_panic() {
    let sim = sim().await;
    let client = sim.client();
    let s = status(
        &client,
        req(
            "GET",
            &format!("{SECRETS}?watch=true&timeoutSeconds=18446744073709551615"),
            "",
            Vec::new(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        s.message,
        "strconv.ParseInt: parsing \"18446744073709551615\": value out of range"
    );

    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "seen"}})).expect("secret"),
    )
    .await
    .expect("create");
    let long = http::Request::get(format!(
        "{SECRETS}?watch=true&resourceVersion=0&timeoutSeconds=9223372036854775807"
    ))
    .body(Vec::new())
    .expect("request");
    let mut events = client
        .request_events::<Secret>(long)
        .await
        .expect("watch")
        .boxed();
    match events.try_next().await.expect("event") {
        Some(WatchEvent::Added(s)) => assert_eq!(s.name_any(), "seen"),
        other => panic!("expected the secret, got {other:?}"),
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "later"}})).expect("secret"),
    )
    .await
    .expect("create");
    match events.try_next().await.expect("event") {
        Some(WatchEvent::Added(s)) => assert_eq!(s.name_any(), "later"),
        other => panic!("the watch is still alive: {other:?}"),
    }
    drop(events);

    let negative = http::Request::get(format!("{SECRETS}?watch=true&timeoutSeconds=-1"))
        .body(Vec::new())
        .expect("request");
    let ended: Vec<Result<WatchEvent<Secret>, kube::Error>> = client
        .request_events::<Secret>(negative)
        .await
        .expect("watch")
        .collect()
        .await;
    assert!(ended.is_empty(), "{ended:?}");
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Connections

/// Two thousand idle connections from one loopback client do not lock others out: the
/// sim keeps at most its connection cap open, closing the oldest idle one for each
/// newcomer, and a kube-rs client still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_leaves_room_for_real_clients() {
    let sim = sim().await;
    let cap = sim::MAX_CONNECTIONS;
    let flood = 2000;
    let mut idle = Vec::with_capacity(flood);
    for _ in 0..flood {
        idle.push(
            tokio::net::TcpStream::connect(sim.addr)
                .await
                .expect("connect"),
        );
    }
    let stats = &sim.server().stats();
    let accepted = || {
        stats
            .connections_accepted
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    eventually("the flood to be accepted", || accepted() >= flood as u64).await;
    // An eviction is counted just after the accept that caused it: wait for the last one.
    let evicted = || {
        stats
            .connections_evicted
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    eventually("the connections over the cap to be evicted", || {
        evicted() >= (flood - cap) as u64
    })
    .await;
    let open = stats
        .connections_open
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(open <= cap as u64, "{open} connections open, cap {cap}");

    // The oldest of the flood was closed by the server.
    let mut buf = [0u8; 16];
    let n = idle[0].read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "the first idle connection was closed");

    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sim.client());
    let list = ns.list(&ListParams::default()).await.expect("still served");
    assert!(list.items.iter().any(|n| n.name_any() == "default"));
    drop(idle);
    sim.shutdown().await;
}

/// A client that never finishes its request headers is disconnected after the header-read
/// timeout (the API server's `ReadHeaderTimeout`), one that never finishes its body is
/// answered 504 Timeout after the request timeout (the API server's timeout filter; both
/// shortened here), and a connection serving a watch is never taken as idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_busy_connections_are_kept() {
    let sim = sim::start(SimOptions {
        connections: sim::ConnLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
        },
        ..SimOptions::default()
    })
    .await
    .expect("sim starts");
    let mut slow = tokio::net::TcpStream::connect(sim.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server closed the slow connection");
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );

    let mut trickle = tokio::net::TcpStream::connect(sim.addr)
        .await
        .expect("connect");
    trickle
        .write_all(
            format!("POST {SECRETS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), trickle.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server gave up on the body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default())
        .expect("a Status");
    assert_eq!(body["reason"], "Timeout");
    assert_eq!(
        body["message"],
        "Timeout: request did not complete within requested timeout - context deadline exceeded"
    );

    // Four watches fill the cap; a fifth connection finds no idle one and is closed, and
    // the watches carry on.
    let api: Api<Secret> = Api::namespaced(sim.client(), "default");
    let mut watches = Vec::new();
    for _ in 0..4 {
        watches.push(
            api.watch(&WatchParams::default().timeout(60), "0")
                .await
                .expect("watch")
                .boxed(),
        );
    }
    let mut extra = tokio::net::TcpStream::connect(sim.addr)
        .await
        .expect("connect");
    let mut buf = Vec::new();
    let _ = extra
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let _ = extra.read_to_end(&mut buf).await;
    assert!(buf.is_empty(), "refused while every connection is busy");
    let stats = sim.server().stats();
    assert!(
        stats
            .connections_refused
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    sim::seed_object(
        sim.store(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "w", "namespace": "default"}}),
    )
    .expect("seed");
    for w in &mut watches {
        match w.try_next().await.expect("event") {
            Some(WatchEvent::Added(s)) => assert_eq!(s.name_any(), "w"),
            other => panic!("the watch lives on: {other:?}"),
        }
    }
    drop(watches);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Silent acceptance

/// A custom resource is checked against its CRD's structural schema: `"spec": 5` on a
/// NetworkAttachmentDefinition is 422 with kube-openapi's type error as the cause.
#[tokio::test]
async fn custom_resources_of_the_wrong_type_are_invalid() {
    let sim = sim().await;
    let client = sim.client();
    let mut bad = nad("typed", 0);
    bad["spec"] = json!(5);
    let s = status(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            bad.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let d = s.details.as_ref().expect("details");
    assert_eq!(d.causes.len(), 1);
    assert_eq!(
        (
            d.causes[0].field.as_str(),
            d.causes[0].reason.as_str(),
            d.causes[0].message.as_str()
        ),
        (
            "spec",
            "FieldValueTypeInvalid",
            "Invalid value: \"integer\": spec in body must be of type object: \"integer\""
        )
    );
    assert!(s.message.contains(
        "spec: Invalid value: \"integer\": spec in body must be of type object: \"integer\""
    ));
    bad["spec"] = json!({"config": {"type": "bridge"}});
    let s = status(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            bad.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!(
        s.details.as_ref().expect("details").causes[0].message,
        "Invalid value: \"object\": spec.config in body must be of type string: \"object\""
    );
    sim.shutdown().await;
}

/// Label selectors go through apimachinery's parser: `a/b/c=d` is 400 with its message;
/// `a in ()` is valid there (the empty set is read as the empty value) and so here.
#[tokio::test]
async fn label_selectors_are_parsed_as_apimachinery_parses_them() {
    let sim = sim().await;
    let client = sim.client();
    let s = status(
        &client,
        req(
            "GET",
            &format!("{SECRETS}?labelSelector=a%2Fb%2Fc%3Dd"),
            "",
            Vec::new(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        s.message,
        "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    );
    let s = status(
        &client,
        req(
            "GET",
            &format!("{SECRETS}?labelSelector=a%20in%20(x%2C"),
            "",
            Vec::new(),
        ),
    )
    .await;
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            400,
            "unable to parse requirement: found '', expected: ',', or identifier"
        )
    );
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    for (name, a) in [("blank", ""), ("set", "x")] {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name, "labels": {"a": a}}}))
                .expect("secret"),
        )
        .await
        .expect("create");
    }
    let names: Vec<String> = api
        .list(&ListParams::default().labels("a in ()"))
        .await
        .expect("a in () is a valid selector")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names, ["blank"]);
    sim.shutdown().await;
}

/// `fieldValidation` takes "", Ignore, Warn or Strict (case-sensitive), else 422 against
/// the verb's options kind, as apimachinery `ValidateFieldValidation` answers.
#[tokio::test]
async fn unknown_field_validation_directives_are_invalid() {
    let sim = sim().await;
    let client = sim.client();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fv"}});
    let msg = |kind: &str, v: &str| {
        format!("{kind}.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"{v}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"")
    };
    let s = status(
        &client,
        req(
            "POST",
            &format!("{SECRETS}?fieldValidation=garbage"),
            "application/json",
            secret.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert_eq!(s.message, msg("CreateOptions", "garbage"));
    let d = s.details.as_ref().expect("details");
    assert_eq!(
        (d.group.as_str(), d.kind.as_str()),
        ("meta.k8s.io", "CreateOptions")
    );
    assert_eq!(d.causes[0].reason, "FieldValueNotSupported");

    let created = ok_json(
        &client,
        req(
            "POST",
            &format!("{SECRETS}?fieldValidation=Strict"),
            "application/json",
            secret.to_string().into_bytes(),
        ),
    )
    .await;
    let s = status(
        &client,
        req(
            "PUT",
            &format!("{SECRETS}/fv?fieldValidation=strict"),
            "application/json",
            created.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!(s.message, msg("UpdateOptions", "strict"));
    let s = status(
        &client,
        req(
            "PATCH",
            &format!("{SECRETS}/fv?fieldValidation=garbage"),
            "application/merge-patch+json",
            b"{}".to_vec(),
        ),
    )
    .await;
    assert_eq!(s.message, msg("PatchOptions", "garbage"));
    sim.shutdown().await;
}

/// Patches may not change what identifies an object: a changed `metadata.uid` is 422
/// "field is immutable" (a patch carries no UID precondition; `BeforeUpdate` validates the
/// change), a changed namespace 400 (`EnsureObjectNamespaceMatchesRequestNamespace`), a
/// changed kind 422 (a custom resource's `ValidateTypeMeta`; a built-in kind no longer
/// decodes). A PUT naming another UID stays a 409 precondition failure. Nothing changes.
#[tokio::test]
async fn patches_cannot_change_uid_namespace_or_kind() {
    let sim = sim().await;
    let client = sim.client();
    let created = ok_json(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            nad("fixed", 0).to_string().into_bytes(),
        ),
    )
    .await;
    let path = format!("{NADS}/fixed");
    let jp = |ops: Value| {
        req(
            "PATCH",
            &path,
            "application/json-patch+json",
            ops.to_string().into_bytes(),
        )
    };

    let s = status(
        &client,
        jp(json!([{"op": "replace", "path": "/metadata/uid", "value": "forged"}])),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        s.message,
        "NetworkAttachmentDefinition.k8s.cni.cncf.io \"fixed\" is invalid: metadata.uid: Invalid value: \"forged\": field is immutable"
    );

    let s = status(
        &client,
        jp(json!([{"op": "replace", "path": "/metadata/namespace", "value": "kube-system"}])),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        s.message,
        "the namespace of the provided object does not match the namespace sent on the request"
    );

    let s = status(
        &client,
        jp(json!([{"op": "replace", "path": "/kind", "value": "Secret"}])),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        s.details.as_ref().expect("details").causes[0].message,
        "Invalid value: \"Secret\": must be NetworkAttachmentDefinition"
    );
    let s = status(
        &client,
        req(
            "PATCH",
            &path,
            "application/merge-patch+json",
            br#"{"apiVersion":"k8s.cni.cncf.io/v2"}"#.to_vec(),
        ),
    )
    .await;
    assert_eq!(
        (
            s.code,
            s.details.as_ref().expect("details").causes[0]
                .field
                .as_str()
        ),
        (422, "apiVersion")
    );

    let secret = ok_json(
        &client,
        req(
            "POST",
            SECRETS,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"k"}}"#.to_vec(),
        ),
    )
    .await;
    let s = status(
        &client,
        req(
            "PATCH",
            &format!("{SECRETS}/k"),
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/kind","value":"ConfigMap"}]"#.to_vec(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let cause = &s.details.as_ref().expect("details").causes[0];
    assert_eq!(cause.field, "patch");
    assert!(cause
        .message
        .ends_with(": no kind \"ConfigMap\" is registered for version \"v1\""));

    let mut put = created.clone();
    put["metadata"]["uid"] = json!("someone-else");
    let s = status(
        &client,
        req(
            "PUT",
            &path,
            "application/json",
            put.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(s
        .message
        .contains("Precondition failed: UID in precondition: someone-else"));

    let now = ok_json(&client, req("GET", &path, "", Vec::new())).await;
    assert_eq!(rv(&now), rv(&created), "nothing was written");
    assert_eq!(now["metadata"]["uid"], created["metadata"]["uid"]);
    let k = ok_json(&client, req("GET", &format!("{SECRETS}/k"), "", Vec::new())).await;
    assert_eq!(rv(&k), rv(&secret));
    sim.shutdown().await;
}

/// A patch that changes nothing writes nothing: the resourceVersion stays (etcd3 store
/// `GuaranteedUpdate` skips the write when the encoded object is unchanged), whatever the
/// patch type and kind.
#[tokio::test]
async fn empty_patches_do_not_bump_the_resource_version() {
    let sim = sim().await;
    let client = sim.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"a": "1"}}))
            .expect("cm"),
    )
    .await
    .expect("create");
    ok_json(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            nad("n", 0).to_string().into_bytes(),
        ),
    )
    .await;
    ok_json(
        &client,
        req(
            "POST",
            SECRETS,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"k":"v"}}"#.to_vec(),
        ),
    )
    .await;
    for (path, body) in [
        (
            "/apis/kubevirt.io/v1/namespaces/default/virtualmachines",
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "metadata": {"name": "vm"},
                "spec": {"runStrategy": "Halted", "template": {"spec": {
                    "domain": {"devices": {"disks": [{"name": "d", "disk": {"bus": "virtio"}}]},
                               "memory": {"guest": "1Gi"}},
                    "volumes": [{"name": "d", "dataVolume": {"name": "vm-d"}}]}}}}),
        ),
        (
            "/api/v1/namespaces/default/persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
                "spec": {"holderIdentity": "me", "leaseDurationSeconds": 10,
                         "renewTime": "2026-01-01T00:00:00.000000Z"}}),
        ),
        (
            "/apis/cdi.kubevirt.io/v1beta1/namespaces/default/datavolumes",
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "dv"},
                "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}),
        ),
    ] {
        ok_json(
            &client,
            req(
                "POST",
                path,
                "application/json",
                body.to_string().into_bytes(),
            ),
        )
        .await;
    }
    let paths = [
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm".to_string(),
        "/api/v1/namespaces/default/persistentvolumeclaims/pvc".to_string(),
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/l".to_string(),
        "/apis/cdi.kubevirt.io/v1beta1/namespaces/default/datavolumes/dv".to_string(),
        "/api/v1/namespaces/default/configmaps/cm".to_string(),
        format!("{NADS}/n"),
        format!("{SECRETS}/s"),
        "/api/v1/namespaces/default".to_string(),
        "/api/v1/nodes/sim-node-1".to_string(),
        "/apis/storage.k8s.io/v1/storageclasses/sim-standard".to_string(),
    ];
    for path in &paths {
        let before = ok_json(&client, req("GET", path, "", Vec::new())).await;
        for (ct, body) in [
            ("application/merge-patch+json", "{}"),
            ("application/json-patch+json", "[]"),
            ("application/strategic-merge-patch+json", "{}"),
        ] {
            let custom = ["k8s.cni", "kubevirt.io", "cdi.kubevirt"]
                .iter()
                .any(|g| path.starts_with(&format!("/apis/{g}")));
            if ct.starts_with("application/strategic") && custom {
                continue;
            }
            let after = ok_json(&client, req("PATCH", path, ct, body.as_bytes().to_vec())).await;
            assert_eq!(rv(&after), rv(&before), "{ct} {body} on {path}");
            assert_eq!(after, before, "{ct} {body} on {path}");
        }
    }
    // The same apply twice, and to /status: the second writes nothing.
    for (path, body) in [
        (
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=m",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n",
        ),
        (
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/applied?fieldManager=m",
            "{\"apiVersion\":\"k8s.cni.cncf.io/v1\",\"kind\":\"NetworkAttachmentDefinition\",\"metadata\":{\"name\":\"applied\"},\"spec\":{\"config\":\"{\\\"type\\\":\\\"bridge\\\"}\"}}",
        ),
    ] {
        let apply = || req("PATCH", path, "application/apply-patch+yaml", body.as_bytes().to_vec());
        let first = ok_json(&client, apply()).await;
        let second = ok_json(&client, apply()).await;
        assert_eq!(rv(&second), rv(&first), "{path}");
    }
    let status_path = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm/status";
    let before = ok_json(&client, req("GET", status_path, "", Vec::new())).await;
    let after = ok_json(
        &client,
        req(
            "PATCH",
            status_path,
            "application/merge-patch+json",
            b"{}".to_vec(),
        ),
    )
    .await;
    assert_eq!(rv(&after), rv(&before), "status");
    sim.shutdown().await;
}

/// Continue tokens are the API server's (`storage.EncodeContinue`): one it could not have
/// issued is 400 "invalid continue token" with `DecodeContinue`'s reason, a start key that
/// climbs out of the list (`..`) is refused, one from a resourceVersion this server has
/// not reached is 410 (start the list again), and a resourceVersion next to `continue` is
/// 400.
#[tokio::test]
async fn forged_continue_tokens_are_refused() {
    let sim = sim().await;
    let client = sim.client();
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("p{i}")}})).expect("s"),
        )
        .await
        .expect("create");
    }
    let page = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("page");
    let token = page.metadata.continue_.clone().expect("more");
    let next = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .expect("the issued token works");
    assert_eq!(next.items[0].name_any(), "p1");

    let b64 = |s: &str| {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let list = |token: &str, extra: &str| {
        req(
            "GET",
            &format!("{SECRETS}?limit=1&continue={token}{extra}"),
            "",
            Vec::new(),
        )
    };
    let cases = [
        (
            "!!".to_string(),
            400,
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 0",
        ),
        (
            b64(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"p0\u0000"}"#),
            400,
            "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ),
        (
            b64(r#"{"v":"meta.k8s.io/v1","rv":5,"start":""}"#),
            400,
            "invalid continue token: continue key is not valid: encoded start key empty (version meta.k8s.io/v1)",
        ),
        (
            b64(r#"{"v":"meta.k8s.io/v1","rv":5,"start":"../../kube-system/x"}"#),
            400,
            "invalid continue token: continue key is not valid: ../../kube-system/x",
        ),
        (
            b64(r#"{"v":"v9","rv":5,"start":"p0"}"#),
            400,
            "invalid continue token: continue key is not valid: server does not recognize this encoded version v9",
        ),
        (
            b64(r#"{"v":"meta.k8s.io/v1","rv":999999,"start":"p0\u0000"}"#),
            410,
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ),
    ];
    for (token, code, message) in cases {
        let s = status(&client, list(&token, "")).await;
        assert_eq!((s.code, s.message.as_str()), (code, message), "{token}");
    }
    let s = status(&client, list(&token, "&resourceVersion=5")).await;
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            400,
            "specifying resource version is not allowed when using continue"
        )
    );
    sim.shutdown().await;
}

/// JSON patches are bounded as the API server bounds them: more than 10,000 operations is
/// 413, and copies that would build more than the body limit are refused before they do.
#[tokio::test]
async fn json_patch_bombs_are_refused() {
    let sim = sim().await;
    let client = sim.client();
    ok_json(
        &client,
        req(
            "POST",
            NADS,
            "application/json",
            nad("target", 0).to_string().into_bytes(),
        ),
    )
    .await;
    let path = format!("{NADS}/target");
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "NetworkAttachmentDefinition"}))
        .collect();
    let s = status(
        &client,
        req(
            "PATCH",
            &path,
            "application/json-patch+json",
            Value::Array(ops).to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (413, "RequestEntityTooLarge"));
    assert_eq!(
        s.message,
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    // Each copy doubles the copied subtree: 40 of them would make 2^40 copies.
    let mut ops = vec![
        json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(1000)}}),
    ];
    for i in 0..40 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
    }
    let s = status(
        &client,
        req(
            "PATCH",
            &path,
            "application/json-patch+json",
            Value::Array(ops).to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message
            .contains("accumulated copy size limit of 3145728 bytes"),
        "{}",
        s.message
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// vCenter credentials

/// One HTTP/1.1 exchange on a fresh connection: the status code and the body.
async fn raw_http(addr: std::net::SocketAddr, request: String) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

/// The simulated vCenter takes only the scenario's credentials (those its seeded Secrets
/// carry): a wrong password or no credentials is 401 with vCenter's UNAUTHENTICATED
/// error, the right ones a session.
#[tokio::test]
async fn the_simulated_vcenter_checks_credentials() {
    let scenario = wavelift::sim::controllers::scenario::Scenario {
        vcenter_user: "administrator@vsphere.local".into(),
        vcenter_password: "s3cret!".into(),
        ..Default::default()
    };
    let r = wavelift::sim::controllers::rehearsal::Rehearsal::start(scenario, 0)
        .await
        .expect("rehearsal");
    let login = |auth: Option<&str>| {
        let header = auth
            .map(|a| format!("Authorization: Basic {}\r\n", store::base64(a.as_bytes())))
            .unwrap_or_default();
        format!("POST /api/session HTTP/1.1\r\nHost: vcenter\r\n{header}Content-Length: 0\r\nConnection: close\r\n\r\n")
    };
    for auth in [
        Some("administrator@vsphere.local:wrong"),
        Some("sim-user:sim-password"),
        Some("garbage"),
        None,
    ] {
        let (code, body) = raw_http(r.sim.addr, login(auth)).await;
        assert_eq!(code, 401, "{auth:?}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["error_type"], "UNAUTHENTICATED");
        assert_eq!(
            body["messages"][0]["id"],
            "com.vmware.vapi.endpoint.method.authentication.required"
        );
    }
    let (code, body) = raw_http(
        r.sim.addr,
        login(Some("administrator@vsphere.local:s3cret!")),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let token: String = serde_json::from_str(&body).expect("a session token");
    assert!(!token.is_empty());
}
