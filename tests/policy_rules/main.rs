use wavelift::policy::fw;
use wavelift::policy::rules::*;
fn fx(name: &str) -> (String, String) {
    let p = format!(
        "{}/tests/fixtures/policy/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    (
        format!("policy/{name}"),
        std::fs::read_to_string(p).unwrap(),
    )
}
fn a(s: &AddrSet) -> String {
    match s {
        AddrSet::Any => "any".into(),
        AddrSet::Some { ranges, unresolved } => format!(
            "[{}]{:?}",
            ranges
                .iter()
                .map(|r| if r.lo == r.hi {
                    r.lo.to_string()
                } else {
                    format!("{}-{}", r.lo, r.hi)
                })
                .collect::<Vec<_>>()
                .join(","),
            unresolved
        ),
    }
}
#[test]
fn dump() {
    let files: Vec<(String, String)> = std::env::var("FX")
        .unwrap_or("firewall.csv ipsets.save edge.iptables asa-running.cfg".into())
        .split(' ')
        .map(fx)
        .collect();
    for rs in fw::parse_all(&files) {
        println!("== {} {}", rs.file, rs.format);
        for l in &rs.lists {
            println!(
                "-- {} default {:?} {} implicit={}",
                l.name, l.default, l.default_origin, l.implicit_default
            );
            for r in &l.rules {
                let sv = match &r.services {
                    Services::Any => "any".to_string(),
                    Services::List(v) => v
                        .iter()
                        .map(|s| {
                            format!(
                                "{:?}{}",
                                s.proto,
                                s.ports
                                    .map(|(a, b)| format!(":{a}-{b}"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                };
                println!(
                    "  {} | {:?} {:?} src={} dst={} svc={} nb={:?}{}",
                    r.origin,
                    r.action,
                    r.direction,
                    a(&r.src),
                    a(&r.dst),
                    sv,
                    r.narrowed_by,
                    if r.disabled { " DISABLED" } else { "" }
                );
            }
        }
        for w in &rs.warnings {
            println!("  W {w}");
        }
    }
}
