//! The ordered rule model parsed from each firewall format (`wavelift::policy::fw`): every
//! field of every rule of the fixtures in `tests/fixtures/policy/`, and hostile inputs.

mod hostile;
mod structured;
mod text_formats;

pub use wavelift::policy::fw;
pub use wavelift::policy::rules::*;

pub fn fixture(name: &str) -> (String, String) {
    let p = format!(
        "{}/tests/fixtures/policy/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (format!("policy/{name}"), text)
}

pub fn parse_fixture(name: &str) -> RuleSet {
    let (f, t) = fixture(name);
    fw::parse(&f, &t).unwrap_or_else(|| panic!("{name} not detected"))
}

pub fn r(a: &str, b: &str) -> AddrRange {
    AddrRange {
        lo: a.parse().unwrap(),
        hi: b.parse().unwrap(),
    }
}

pub fn h(a: &str) -> AddrRange {
    r(a, a)
}

pub fn set(ranges: &[AddrRange], unresolved: &[&str]) -> AddrSet {
    AddrSet::Some {
        ranges: ranges.to_vec(),
        unresolved: unresolved.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn svc(list: &[(Proto, Option<(u16, u16)>)]) -> Services {
    Services::List(
        list.iter()
            .map(|&(proto, ports)| Service { proto, ports })
            .collect(),
    )
}

pub fn tcp(lo: u16, hi: u16) -> (Proto, Option<(u16, u16)>) {
    (Proto::Tcp, Some((lo, hi)))
}

pub fn origin(file: &str, line: usize, name: Option<&str>, owner: Option<&str>) -> Origin {
    Origin {
        file: format!("policy/{file}"),
        line,
        name: name.map(str::to_string),
        owner: owner.map(str::to_string),
    }
}

/// A rule without narrowing, enabled.
pub fn rule(
    o: Origin,
    action: Action,
    direction: Option<Direction>,
    src: AddrSet,
    dst: AddrSet,
    services: Services,
) -> Rule {
    Rule {
        origin: o,
        action,
        direction,
        src,
        dst,
        services,
        narrowed_by: vec![],
        disabled: false,
    }
}

pub fn narrowed(mut r: Rule, by: &[&str]) -> Rule {
    r.narrowed_by = by.iter().map(|s| s.to_string()).collect();
    r
}

pub fn disabled(mut r: Rule) -> Rule {
    r.disabled = true;
    r
}

/// Compares lists rule by rule first, for a readable failure.
pub fn assert_list(got: &RuleList, want: &RuleList) {
    for (i, (g, w)) in got.rules.iter().zip(&want.rules).enumerate() {
        assert_eq!(g, w, "{}: rule #{i}", want.name);
    }
    assert_eq!(got, want);
}
