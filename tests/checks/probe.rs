//! Real probes against real listeners on 127.0.0.0/8 and a real DNS server on loopback.

use crate::common;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use wavelift::checks::probe::{detect_mode, DnsQuery, IcmpMode, Prober, RealProber, SimProber};
use wavelift::checks::result::Outcome;

const T: Duration = Duration::from_millis(1500);

/// A port on 127.0.0.1 where nothing listens (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

// ---------------------------------------------------------------- TCP

#[tokio::test]
async fn tcp_connect_passes_on_a_listener() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let p = RealProber::new().tcp(addr, T).await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(p.latency.is_some());
}

#[tokio::test]
async fn tcp_connect_refused_fails() {
    let port = closed_port().await;
    // Another loopback address too: nothing listens on 127.0.0.77.
    for ip in [[127, 0, 0, 1], [127, 0, 0, 77]] {
        let addr = SocketAddr::from((ip, port));
        let p = RealProber::new().tcp(addr, T).await;
        assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
        assert!(p.detail.contains("refused"), "{}", p.detail);
    }
}

#[tokio::test]
async fn tcp_connect_times_out_on_a_full_backlog() {
    // A listener with backlog 0 that never accepts: once its accept queue is full, the
    // kernel drops further SYNs and connects hang.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let mut fillers = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            Ok(Err(e)) => panic!("filler connect failed: {e}"),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(full, "backlog never filled");
    let p = RealProber::new()
        .tcp(addr, Duration::from_millis(300))
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("no answer within"), "{}", p.detail);
    drop(sock);
}

// ---------------------------------------------------------------- HTTP

/// Serves every connection with `HTTP/1.1 {status}` (or never answers when `status` is 0).
async fn http_server(status: u16) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                if status == 0 {
                    // Accept and read, never answer; hold the connection open.
                    let _ = s.read(&mut buf).await;
                    return;
                }
                let req = String::from_utf8_lossy(&got).to_string();
                let body = format!("{req:?}");
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_expected_status_passes() {
    let addr = http_server(200).await;
    let url = format!("http://{addr}/health");
    let p = RealProber::new().http(&url, &[], T).await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(p.detail.contains("HTTP 200"), "{}", p.detail);

    let addr = http_server(302).await;
    let p = RealProber::new()
        .http(&format!("http://{addr}/"), &[], T)
        .await;
    assert_eq!(p.outcome, Outcome::Pass, "3xx passes by default: {p:?}");

    let addr = http_server(503).await;
    let p = RealProber::new()
        .http(&format!("http://{addr}/"), &[503], T)
        .await;
    assert_eq!(p.outcome, Outcome::Pass, "listed status passes: {p:?}");
}

#[tokio::test]
async fn http_wrong_status_fails() {
    let addr = http_server(500).await;
    let p = RealProber::new()
        .http(&format!("http://{addr}/x?y=1"), &[], T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(
        p.detail.contains("HTTP 500, expected 2xx/3xx"),
        "{}",
        p.detail
    );

    let addr = http_server(200).await;
    let p = RealProber::new()
        .http(&format!("http://{addr}/"), &[204], T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("expected [204]"), "{}", p.detail);
}

#[tokio::test]
async fn http_without_reply_times_out() {
    let addr = http_server(0).await;
    let p = RealProber::new()
        .http(&format!("http://{addr}/"), &[], Duration::from_millis(300))
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("no HTTP response within"), "{}", p.detail);
}

#[tokio::test]
async fn http_refused_fails_and_https_to_plain_server_fails() {
    let port = closed_port().await;
    let p = RealProber::new()
        .http(&format!("http://127.0.0.1:{port}/"), &[], T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("refused"), "{}", p.detail);

    // A plain-HTTP server that answers at once: the TLS handshake gets garbage.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let p = RealProber::new()
        .http(&format!("https://{addr}/"), &[], T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("TLS"), "{}", p.detail);
}

/// HTTPS on loopback with a self-signed certificate that names neither the IP nor anything
/// the check asks for.
async fn https_server(status: u16) -> SocketAddr {
    common::tls::https_server(move |_| (format!("{status} X"), String::new()))
        .await
        .addr
}

#[tokio::test]
async fn https_passes_and_says_the_certificate_was_not_verified() {
    let addr = https_server(200).await;
    let p = RealProber::new()
        .http(&format!("https://{addr}/health"), &[200], T)
        .await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(
        p.detail.contains("certificate not verified"),
        "{}",
        p.detail
    );

    let addr = https_server(404).await;
    let p = RealProber::new()
        .http(&format!("https://{addr}/"), &[], T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("HTTP 404"), "{}", p.detail);
}

// ---------------------------------------------------------------- ICMP

#[tokio::test]
async fn icmp_to_loopback_passes() {
    let mode = detect_mode();
    let p = RealProber::new()
        .icmp(IpAddr::V4(Ipv4Addr::LOCALHOST), T)
        .await;
    println!("ICMP mode {mode:?}: {p:?}");
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    if mode == IcmpMode::TcpFallback {
        assert!(p.detail.contains("TCP fallback"), "{}", p.detail);
    } else {
        assert!(p.detail.contains("echo reply"), "{}", p.detail);
    }
}

#[tokio::test]
async fn icmp_tcp_fallback_says_so_and_never_passes_falsely() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let prober = RealProber {
        fallback_ports: vec![port],
        icmp_mode: Some(IcmpMode::TcpFallback),
    };
    let p = prober.icmp(IpAddr::V4(Ipv4Addr::LOCALHOST), T).await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(
        p.detail.contains("ICMP sockets not permitted"),
        "{}",
        p.detail
    );
    assert!(p.detail.contains("TCP fallback"), "{}", p.detail);
    drop(l);

    // A refused port still proves the host is up.
    let port = closed_port().await;
    let prober = RealProber {
        fallback_ports: vec![port],
        icmp_mode: Some(IcmpMode::TcpFallback),
    };
    let p = prober.icmp(IpAddr::V4(Ipv4Addr::LOCALHOST), T).await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(p.detail.contains("host is up"), "{}", p.detail);
}

// ---------------------------------------------------------------- DNS

/// A tiny authoritative UDP DNS server for a test zone: A records and PTR records; unknown
/// names get NXDOMAIN.
struct Zone {
    a: HashMap<String, Vec<Ipv4Addr>>,
    ptr: HashMap<Ipv4Addr, String>,
}

async fn dns_server(zone: Zone) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.message_type = MessageType::Response;
            r.metadata.authoritative = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            let mut found = false;
            for query in &q.queries {
                r.add_query(query.clone());
                let name = query.name().to_ascii().trim_end_matches('.').to_lowercase();
                match query.query_type() {
                    RecordType::A => {
                        if let Some(ips) = zone.a.get(&name) {
                            found = true;
                            for ip in ips {
                                r.add_answer(Record::from_rdata(
                                    query.name().clone(),
                                    60,
                                    RData::A(A(*ip)),
                                ));
                            }
                        }
                    }
                    RecordType::PTR => {
                        let hit = zone.ptr.iter().find(|(ip, _)| {
                            Name::from(IpAddr::V4(**ip))
                                .to_ascii()
                                .trim_end_matches('.')
                                == name
                        });
                        if let Some((_, target)) = hit {
                            found = true;
                            let target = Name::from_ascii(format!("{target}.")).expect("name");
                            r.add_answer(Record::from_rdata(
                                query.name().clone(),
                                60,
                                RData::PTR(PTR(target)),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if !found {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    addr
}

fn test_zone() -> Zone {
    let mut a = HashMap::new();
    a.insert("db.test.example".into(), vec![Ipv4Addr::new(192, 0, 2, 15)]);
    a.insert(
        "web.test.example".into(),
        vec![Ipv4Addr::new(192, 0, 2, 99)],
    );
    a.insert(
        "noptr.test.example".into(),
        vec![Ipv4Addr::new(192, 0, 2, 16)],
    );
    a.insert(
        "swapped.test.example".into(),
        vec![Ipv4Addr::new(192, 0, 2, 17)],
    );
    let mut ptr = HashMap::new();
    ptr.insert(Ipv4Addr::new(192, 0, 2, 15), "db.test.example".into());
    ptr.insert(Ipv4Addr::new(192, 0, 2, 17), "other.test.example".into());
    Zone { a, ptr }
}

fn q(name: &str, ip: [u8; 4], server: SocketAddr) -> DnsQuery<'_> {
    DnsQuery {
        name,
        expected: IpAddr::from(ip),
        server: Some(server),
    }
}

#[tokio::test]
async fn dns_forward_and_reverse_match() {
    let server = dns_server(test_zone()).await;
    let p = RealProber::new()
        .dns(q("db.test.example", [192, 0, 2, 15], server), T)
        .await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(p.detail.contains("PTR → db.test.example"), "{}", p.detail);
    // Case and a trailing dot do not matter.
    let p = RealProber::new()
        .dns(q("DB.test.example.", [192, 0, 2, 15], server), T)
        .await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
}

#[tokio::test]
async fn dns_wrong_a_answer_fails() {
    let server = dns_server(test_zone()).await;
    let p = RealProber::new()
        .dns(q("web.test.example", [192, 0, 2, 20], server), T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(
        p.detail.contains("192.0.2.99") && p.detail.contains("expected 192.0.2.20"),
        "{}",
        p.detail
    );
    let p = RealProber::new()
        .dns(q("missing.test.example", [192, 0, 2, 20], server), T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("NXDOMAIN"), "{}", p.detail);
}

#[tokio::test]
async fn dns_missing_or_wrong_ptr_fails() {
    let server = dns_server(test_zone()).await;
    let p = RealProber::new()
        .dns(q("noptr.test.example", [192, 0, 2, 16], server), T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("no PTR record"), "{}", p.detail);
    let p = RealProber::new()
        .dns(q("swapped.test.example", [192, 0, 2, 17], server), T)
        .await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(p.detail.contains("other.test.example"), "{}", p.detail);
}

#[tokio::test]
async fn dns_unreachable_resolver_is_an_error_not_a_failure() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let dead = sock.local_addr().expect("addr");
    drop(sock);
    let p = RealProber::new()
        .dns(q("db.test.example", [192, 0, 2, 15], dead), T)
        .await;
    assert_eq!(p.outcome, Outcome::Error, "{p:?}");
    assert!(p.detail.contains(&dead.to_string()), "{}", p.detail);

    // A resolver that never answers: also an error, after the timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let p = RealProber::new()
        .dns(
            q(
                "db.test.example",
                [192, 0, 2, 15],
                silent.local_addr().expect("a"),
            ),
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(p.outcome, Outcome::Error, "{p:?}");
    assert!(p.detail.contains("did not answer"), "{}", p.detail);
}

// ---------------------------------------------------------------- Sim prober

/// Speaks the `/sim/v1/probe` contract: 192.0.2.10 reachable (held by vm-a), 192.0.2.11
/// in conflict (vm-a, vm-b), port 5432 open only on 192.0.2.10, the rest unreachable;
/// 192.0.2.66 answers garbage.
async fn fake_sim() -> SocketAddr {
    use axum::extract::Query;
    use axum::routing::get;
    async fn probe(Query(q): Query<HashMap<String, String>>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let ip = q.get("ip").cloned().unwrap_or_default();
        let proto = q.get("proto").cloned().unwrap_or_default();
        let port = q.get("port").cloned();
        if ip == "192.0.2.66" {
            return "not json".into_response();
        }
        let body = match (ip.as_str(), proto.as_str(), port.as_deref()) {
            ("192.0.2.10", "icmp", None) | ("192.0.2.10", "tcp", Some("5432")) => {
                serde_json::json!({"result": "reachable", "holders": ["vm-a"]})
            }
            ("192.0.2.11", _, _) => {
                serde_json::json!({"result": "conflict", "holders": ["vm-a", "vm-b"]})
            }
            _ => serde_json::json!({"result": "unreachable", "holders": [],
                                     "detail": "nobody holds it", "extra": 1}),
        };
        axum::Json(body).into_response()
    }
    let app = axum::Router::new().route("/sim/v1/probe", get(probe));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

#[tokio::test]
async fn sim_prober_speaks_the_contract() {
    let addr = fake_sim().await;
    let sim = SimProber::new(format!("http://{addr}/"));
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");

    let p = sim.icmp(ip("192.0.2.10"), T).await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    assert!(p.detail.contains("vm-a"), "{}", p.detail);
    let p = sim.tcp(SocketAddr::new(ip("192.0.2.10"), 5432), T).await;
    assert_eq!(p.outcome, Outcome::Pass, "{p:?}");
    let p = sim.tcp(SocketAddr::new(ip("192.0.2.10"), 22), T).await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    let p = sim.icmp(ip("192.0.2.11"), T).await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert!(
        p.detail.contains("conflict") && p.detail.contains("vm-b"),
        "{}",
        p.detail
    );
    let p = sim.icmp(ip("192.0.2.12"), T).await;
    assert_eq!(p.outcome, Outcome::Fail, "{p:?}");
    assert_eq!(p.detail, "sim: unreachable: nobody holds it");
    let p = sim.icmp(ip("192.0.2.66"), T).await;
    assert_eq!(p.outcome, Outcome::Error, "{p:?}");
    let p = sim.http("http://192.0.2.10/", &[], T).await;
    assert_eq!(p.outcome, Outcome::Skipped, "{p:?}");

    let raw = sim
        .answer(ip("192.0.2.11"), None, T)
        .await
        .expect("raw answer");
    assert_eq!(raw.result, "conflict");
    assert_eq!(raw.holders, ["vm-a", "vm-b"]);

    // No sim listening: an error, not a failure of the VM.
    let port = closed_port().await;
    let dead = SimProber::new(format!("http://127.0.0.1:{port}"));
    let p = dead.icmp(ip("192.0.2.10"), T).await;
    assert_eq!(p.outcome, Outcome::Error, "{p:?}");
}

// ---------------------------------------------------------------- disk-consistent

/// The `disk-consistent` check of `plan`'s first VM, run by `prober`.
async fn disk_consistent_of(
    plan: &wavelift::plan::Plan,
    prober: &dyn Prober,
) -> wavelift::checks::result::CheckResult {
    use wavelift::checks::runner::{run_check, Observations, RunSettings};
    let vm = &plan.vms[0];
    let spec = plan
        .checks_for(vm)
        .into_iter()
        .find(|c| c.kind.to_string() == "disk-consistent")
        .expect("the plan checks disk-consistent");
    run_check(
        plan,
        vm,
        &spec,
        prober,
        &Observations::new(),
        &RunSettings::from_plan(plan),
    )
    .await
}

/// On a real network nothing can say what the copied disks hold: the check is skipped,
/// with that reason, never passed.
#[tokio::test]
async fn disk_consistent_is_skipped_with_the_reason_on_a_real_cluster() {
    let plan = common::load_plan("plans/quickstart.toml");
    let r = disk_consistent_of(&plan, &RealProber::new()).await;
    assert_eq!(r.outcome, Outcome::Skipped, "{r:?}");
    assert!(r.detail.contains("only the rehearsal cluster"), "{r:?}");
}

/// An http source's images do not change: skipped with that reason, also in a rehearsal.
#[tokio::test]
async fn disk_consistent_is_skipped_for_http_sources() {
    let plan = common::load_plan("plans/http-images.toml");
    // A prober that would answer (the rehearsal's) is never asked.
    let sim = SimProber::new("http://127.0.0.1:9".to_string());
    let r = disk_consistent_of(&plan, &sim).await;
    assert_eq!(r.outcome, Outcome::Skipped, "{r:?}");
    assert!(r.detail.contains("http source"), "{r:?}");
}
