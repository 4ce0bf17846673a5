//! Spanned TOML tree → typed [`Plan`], reporting every structural problem (unknown keys, wrong
//! types, missing keys, unparsable values) with its location. Cross-references and the rules
//! that span several tables are checked afterwards in `validate`.
//!
//! Missing or malformed required values are replaced by neutral placeholders (an empty string,
//! a zero MAC, a zero size) after their error is recorded, so that one bad value does not hide
//! the rest of the plan; `validate` skips placeholders so they cause no follow-on errors.

use super::diag::{did_you_mean, Diagnostic};
use super::mac::Mac;
use super::model::*;
use super::quantity::Quantity;
use super::span::{Span, Spanned};
use super::time;
use crate::plan::check::{known_kinds, parse_check, parse_duration, CheckSpec};
use crate::toml_spans::{self, Value as Val};
use ipnet::IpNet;
use std::net::IpAddr;
use toml::de::{DeArray, DeTable, DeValue};

/// A diagnostic's hint: fixed text borrowed, formatted text owned.
fn some(hint: impl Into<std::borrow::Cow<'static, str>>) -> Option<std::borrow::Cow<'static, str>> {
    Some(hint.into())
}

fn sp<T>(v: T, s: Span) -> Spanned<T> {
    Spanned::new(v, s)
}

fn conv<'a, 'i>(v: &'a toml::Spanned<DeValue<'i>>) -> (&'a DeValue<'i>, Span) {
    (v.get_ref(), v.span())
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(a)
            if a.iter().all(|v| matches!(v.get_ref(), DeValue::Table(_))) && !a.is_empty() =>
        {
            "an array of tables"
        }
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// How a table is named in messages ("[source]", "VM `db-01`", "the `nics` of VM `db-01`"),
/// formatted only when a message needs it (a 10,000-VM plan has no errors to word).
#[derive(Clone, Copy)]
enum What<'a> {
    Text(&'static str),
    /// A VM by its name; `None` when it has none (`[[vm]]`).
    Vm(Option<&'a str>),
    /// A VM's array (`nics`, `disks`).
    OfVm(&'static str, Option<&'a str>),
}

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Text(t) => f.write_str(t),
            What::Vm(Some(n)) => write!(f, "VM `{n}`"),
            What::Vm(None) => f.write_str("[[vm]]"),
            What::OfVm(key, vm) => write!(f, "the `{key}` of {}", What::Vm(*vm)),
        }
    }
}

/// The keys a table may hold: their names (for messages) and where each one's value is
/// kept in [`Tbl::slots`] (a chain of compares against the literals, no hashing).
struct Keys {
    names: &'static [&'static str],
    index: fn(&str) -> Option<usize>,
}

/// Position of `$key` among the literals: `if key == "a" { 0 } else if key == "b" { 1 } …`.
macro_rules! key_index {
    ($key:ident; $i:expr;) => { None };
    ($key:ident; $i:expr; $head:literal $(, $rest:literal)*) => {
        if $key == $head { Some($i) } else { key_index!($key; $i + 1; $($rest),*) }
    };
}

macro_rules! keys {
    ($name:ident = [$($k:literal),+ $(,)?]) => {
        const $name: Keys = Keys {
            names: &[$($k),+],
            index: |key: &str| key_index!(key; 0usize; $($k),+),
        };
    };
}

/// The most keys a table may hold ([[vm]]).
const MAX_KEYS: usize = 18;

/// A table being read: its entries, its span and how to name it in messages. Its entries
/// are sorted into `slots` by key in one walk (a lookup is then an index, not a search).
struct Tbl<'a, 'i> {
    t: &'a DeTable<'i>,
    span: Span,
    what: What<'a>,
    keys: &'static Keys,
    slots: [Option<&'a Val<'i>>; MAX_KEYS],
    /// Some entry's key is not one of `keys`.
    has_unknown: bool,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn new(t: &'a DeTable<'i>, span: Span, what: What<'a>, keys: &'static Keys) -> Self {
        debug_assert!(keys.names.len() <= MAX_KEYS);
        let mut slots = [None; MAX_KEYS];
        let mut has_unknown = false;
        for (key, value) in t.iter() {
            match (keys.index)(key.get_ref().as_ref()) {
                Some(i) => slots[i] = Some(value),
                None => has_unknown = true,
            }
        }
        Tbl {
            t,
            span,
            what,
            keys,
            slots,
            has_unknown,
        }
    }

    /// The value of `key`, which must be one of the table's known keys.
    fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        let i = (self.keys.index)(key);
        debug_assert!(i.is_some(), "`{key}` is not a key of {}", self.what);
        self.slots[i?]
    }
}

pub(super) struct Reader {
    pub diags: Vec<Diagnostic>,
}

/// Default `[plan] policy_settle` (real clusters take a few seconds to program rules).
const DEFAULT_POLICY_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);
/// Default `[source] shutdown_timeout`.
const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// Default `[[wave]] precopy_interval` (Forklift's default too).
const DEFAULT_PRECOPY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60 * 60);

keys!(
    PLAN_KEYS = [
        "name",
        "namespace",
        "context",
        "network_model",
        "dns_server",
        "description",
        "checks_from",
        "probe_image",
        "import_throughput",
        "backend",
        "forklift_provider",
        "forklift_plan_size",
        "policy",
        "policy_sources",
        "probe_sources",
        "policy_settle",
    ]
);
keys!(
    SOURCE_KEYS = [
        "type",
        "url",
        "credentials_secret",
        "thumbprint",
        "vddk_init_image",
        "power_off",
        "shutdown",
        "shutdown_timeout",
        "enable_cbt",
        "allow_unquiesced",
    ]
);
keys!(
    DEFAULTS_KEYS = [
        "storage_class",
        "access_mode",
        "volume_mode",
        "checks",
        "check_timeout",
        "check_retries",
        "import_restart_limit",
        "import_stall_timeout",
        "guest_agent",
        "firmware",
        "disk_bus",
    ]
);
keys!(
    NETWORK_KEYS = [
        "name",
        "vlan",
        "provider",
        "bridge",
        "physical_network",
        "bridge_marker",
        "cidr",
        "gateway",
        "mtu",
        "owner",
        "probe_ip",
        "l2_path",
        "l2_probe_target",
        "source_network",
        "multi_network_policy",
    ]
);
keys!(
    WAVE_KEYS = [
        "name",
        "window",
        "max_parallel_imports",
        "max_parallel_cutovers",
        "max_imports_per_host",
        "max_imports_per_datastore",
        "migration",
        "precopy_interval",
    ]
);
keys!(WINDOW_KEYS = ["start", "end"]);
/// Concurrent disk transfers per ESXi host (each disk is its own NFC connection; MTV's
/// tuning guidance puts the sweet spot near 10 VMs per host): an assumption to tune.
pub const DEFAULT_IMPORTS_PER_HOST: u32 = 10;
/// Concurrent disk transfers per datastore: an assumption to tune.
pub const DEFAULT_IMPORTS_PER_DATASTORE: u32 = 20;
keys!(
    VM_KEYS = [
        "name",
        "wave",
        "source_id",
        "cpu",
        "memory",
        "network_model",
        "nics",
        "disks",
        "checks",
        "after",
        "owner",
        "host",
        "guest_agent",
        "firmware",
        "disk_bus",
        "os",
        "cutover",
        "migration",
    ]
);
keys!(NIC_KEYS = ["network", "ip", "mac", "model"]);
keys!(DISK_KEYS = ["backing_file", "url", "size", "storage_class"]);
keys!(CHECK_TABLE_KEYS = ["check", "expect", "timeout", "retries"]);
keys!(ROOT_KEYS = ["plan", "source", "defaults", "network", "wave", "vm"]);

impl Reader {
    pub fn new() -> Self {
        Reader { diags: Vec::new() }
    }

    fn err(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, span, msg));
        self.diags.last_mut().expect("just pushed")
    }

    /// A table with the keys it may hold; its unknown keys are reported unless `report`
    /// is false (a VM reports them once it knows its name).
    fn table<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        what: What<'a>,
        keys: &'static Keys,
        report: bool,
    ) -> Option<Tbl<'a, 'i>> {
        let (val, span) = conv(v);
        match val {
            DeValue::Table(t) => {
                let tbl = Tbl::new(t, span, what, keys);
                if report {
                    self.unknown_keys(&tbl);
                }
                Some(tbl)
            }
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!("{what} must be a table, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn unknown_keys(&mut self, tbl: &Tbl<'_, '_>) {
        if !tbl.has_unknown {
            return;
        }
        let known = tbl.keys.names;
        for (key, key_span, _) in toml_spans::entries(tbl.t) {
            if !known.contains(&key) {
                let hint = did_you_mean(key, known.iter().copied())
                    .unwrap_or_else(|| format!("known keys in {}: {}", tbl.what, known.join(", ")));
                self.err(
                    "unknown-key",
                    key_span,
                    format!("unknown key `{key}` in {}", tbl.what),
                )
                .hint = some(hint);
            }
        }
    }

    fn missing(&mut self, tbl: &Tbl<'_, '_>, key: &str, example: &str) {
        self.err(
            "missing-key",
            header_span(tbl.span.clone()),
            format!("missing `{key}` in {}", tbl.what),
        )
        .hint = some(format!("add `{key} = {example}`"));
    }

    fn string(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Option<Spanned<String>> {
        self.str_ref(tbl, key)
            .map(|s| sp(s.value.to_string(), s.span))
    }

    /// [`Self::string`] borrowed from the tree, for values parsed into something else (an
    /// address, a MAC, a choice): no copy of the text.
    fn str_ref<'a>(&mut self, tbl: &Tbl<'a, '_>, key: &str) -> Option<Spanned<&'a str>> {
        let v = tbl.get(key)?;
        let (val, span) = conv(v);
        match val {
            DeValue::String(s) => {
                if s.trim().is_empty() {
                    self.err(
                        "empty-value",
                        span,
                        format!("`{key}` in {} is empty", tbl.what),
                    );
                    None
                } else {
                    Some(sp(s.as_ref(), span))
                }
            }
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "`{key}` in {} must be a string, found {}",
                        tbl.what,
                        type_name(other)
                    ),
                )
                .hint = some(format!("quote it: `{key} = \"…\"`"));
                None
            }
        }
    }

    fn req_string(&mut self, tbl: &Tbl<'_, '_>, key: &str, example: &str) -> Spanned<String> {
        if tbl.get(key).is_none() {
            self.missing(tbl, key, example);
        }
        self.string(tbl, key)
            .unwrap_or_else(|| sp(String::new(), header_span(tbl.span.clone())))
    }

    fn int(&mut self, tbl: &Tbl<'_, '_>, key: &str, min: i64, max: i64) -> Option<Spanned<i64>> {
        let v = tbl.get(key)?;
        let (val, span) = conv(v);
        match val {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if (min..=max).contains(&n) => Some(sp(n, span)),
                _ => {
                    self.err(
                        "out-of-range",
                        span,
                        format!(
                            "`{key}` in {} must be between {min} and {max}, found {i}",
                            tbl.what
                        ),
                    );
                    None
                }
            },
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "`{key}` in {} must be an integer, found {}",
                        tbl.what,
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        tbl: &Tbl<'_, '_>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let s = self.str_ref(tbl, key)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == s.value) {
            return Some(sp(*v, s.span));
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = did_you_mean(s.value, names.iter().copied())
            .unwrap_or_else(|| format!("one of: {}", names.join(", ")));
        self.err(
            "invalid-value",
            s.span.clone(),
            format!("`{key}` in {} cannot be `{}`", tbl.what, s.value),
        )
        .hint = some(hint);
        None
    }

    fn array<'a, 'i>(&mut self, tbl: &Tbl<'a, 'i>, key: &str) -> Option<&'a DeArray<'i>> {
        let v = tbl.get(key)?;
        let (val, span) = conv(v);
        match val {
            DeValue::Array(a) => Some(a),
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "`{key}` in {} must be an array, found {}",
                        tbl.what,
                        type_name(other)
                    ),
                )
                .hint = some(format!("write `{key} = [ … ]`"));
                None
            }
        }
    }

    fn string_list(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Vec<Spanned<String>> {
        let Some(a) = self.array(tbl, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in a.iter() {
            let (val, span) = conv(item);
            match val {
                DeValue::String(s) if !s.trim().is_empty() => out.push(sp(s.to_string(), span)),
                DeValue::String(_) => {
                    self.err(
                        "empty-value",
                        span,
                        format!("empty entry in `{key}` of {}", tbl.what),
                    );
                }
                other => {
                    self.err(
                        "wrong-type",
                        span,
                        format!(
                            "entries of `{key}` in {} must be strings, found {}",
                            tbl.what,
                            type_name(other)
                        ),
                    );
                }
            }
        }
        out
    }

    fn quantity(&mut self, tbl: &Tbl<'_, '_>, key: &str, example: &str) -> Spanned<Quantity> {
        let placeholder = || {
            sp(
                Quantity {
                    text: String::new(),
                    bytes: 0,
                },
                header_span(tbl.span.clone()),
            )
        };
        let Some(v) = tbl.get(key) else {
            self.missing(tbl, key, example);
            return placeholder();
        };
        let (val, span) = conv(v);
        let text: std::borrow::Cow<'_, str> = match val {
            DeValue::String(s) => std::borrow::Cow::Borrowed(s.as_ref()),
            DeValue::Integer(i) => std::borrow::Cow::Owned(i.to_string()),
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "`{key}` in {} must be a quantity string like {example}, found {}",
                        tbl.what,
                        type_name(other)
                    ),
                );
                return placeholder();
            }
        };
        match Quantity::parse(&text) {
            Ok(q) if q.bytes > 0 => sp(q, span),
            Ok(_) => {
                self.err(
                    "bad-quantity",
                    span,
                    format!("`{key}` in {} must be larger than zero", tbl.what),
                );
                placeholder()
            }
            Err(e) => {
                self.err(
                    "bad-quantity",
                    span,
                    format!("`{key}` in {}: {e}", tbl.what),
                )
                .hint = some(format!("write a Kubernetes quantity, e.g. {example}"));
                placeholder()
            }
        }
    }

    /// An array of CIDRs (a bare address is its host prefix).
    fn cidr_list(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Vec<Spanned<IpNet>> {
        let mut out = Vec::new();
        for s in self.string_list(tbl, key) {
            let parsed = s
                .value
                .parse::<IpNet>()
                .or_else(|_| s.value.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) if net.trunc() == net => out.push(sp(net, s.span)),
                Ok(net) => {
                    self.err(
                        "bad-cidr",
                        s.span,
                        format!("`{}` has host bits set in `{key}`", s.value),
                    )
                    .hint = some(format!("did you mean `{}`?", net.trunc()));
                }
                Err(_) => {
                    self.err(
                        "bad-cidr",
                        s.span,
                        format!("`{}` in `{key}` is not a CIDR or an address", s.value),
                    )
                    .hint = some("write e.g. \"198.51.100.0/28\" or \"198.51.100.7\"");
                }
            }
        }
        out
    }

    fn ip(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Option<Spanned<IpAddr>> {
        let s = self.str_ref(tbl, key)?;
        match s.parse::<IpAddr>() {
            Ok(ip) => Some(sp(ip, s.span)),
            Err(_) => {
                let hint = if s.contains('/') {
                    "write the address without a prefix length".to_string()
                } else {
                    "write an IPv4 (192.0.2.10) or IPv6 (2001:db8::10) address".to_string()
                };
                self.err(
                    "bad-ip",
                    s.span,
                    format!("`{}` is not an IP address", s.value),
                )
                .hint = some(hint);
                None
            }
        }
    }

    /// Every table in an array of tables (`[[vm]]`), or inline tables in an array, each
    /// read by `read` as soon as it is found (no list of tables in between).
    fn tables<'a, 'i, T>(
        &mut self,
        v: &'a Val<'i>,
        what: What<'a>,
        keys: &'static Keys,
        report: bool,
        mut read: impl FnMut(&mut Self, &Tbl<'a, 'i>) -> T,
    ) -> Vec<T> {
        let (val, span) = conv(v);
        match val {
            DeValue::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for item in a.iter() {
                    if let Some(t) = self.table(item, what, keys, report) {
                        out.push(read(self, &t));
                    }
                }
                out
            }
            DeValue::Table(_) => {
                self.err(
                    "wrong-type",
                    span,
                    format!("{what} must be an array of tables"),
                )
                .hint = some(format!(
                    "write `[[{}]]` for each entry",
                    what.to_string().trim_matches(|c| c == '[' || c == ']')
                ));
                Vec::new()
            }
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "{what} must be an array of tables, found {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        }
    }

    pub fn read(&mut self, mut root: toml::Spanned<DeTable<'_>>) -> Plan {
        let root_tbl = Tbl::new(
            root.get_ref(),
            root.span(),
            What::Text("the plan file"),
            &ROOT_KEYS,
        );
        self.unknown_keys(&root_tbl);
        let meta = self.read_meta(&root_tbl);
        let source = self.read_source(&root_tbl);
        let defaults = self.read_defaults(&root_tbl);
        let networks = match root_tbl.get("network") {
            Some(v) => self.tables(v, What::Text("[[network]]"), &NETWORK_KEYS, true, |r, t| {
                r.read_network(t)
            }),
            None => Vec::new(),
        };
        let waves = match root_tbl.get("wave") {
            Some(v) => self.tables(v, What::Text("[[wave]]"), &WAVE_KEYS, true, |r, t| {
                r.read_wave(t)
            }),
            None => {
                self.err("missing-table", 0..0, "the plan has no `[[wave]]`")
                    .hint = some("add `[[wave]]` with `name = \"w1\"`");
                Vec::new()
            }
        };
        let vms = match root.get_mut().remove("vm") {
            Some(v) => self.read_vms(v),
            None => {
                self.err("missing-table", 0..0, "the plan has no `[[vm]]`")
                    .hint = some("add a `[[vm]]` table for each VM to migrate");
                Vec::new()
            }
        };
        Plan {
            meta,
            source,
            defaults,
            networks,
            waves,
            vms,
        }
    }

    /// The `[[vm]]` tables, each dropped as soon as it is read: its memory is freed while
    /// still in cache (dropping the whole tree at the end walks it cold), and is at hand
    /// for the next VM's strings.
    fn read_vms(&mut self, v: Val<'_>) -> Vec<Vm> {
        let span = v.span();
        match v.into_inner() {
            DeValue::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for item in a {
                    if let Some(t) = self.table(&item, What::Text("[[vm]]"), &VM_KEYS, false) {
                        let vm = self.read_vm(&t);
                        out.push(vm);
                    }
                }
                out
            }
            other => {
                let v = toml::Spanned::new(span, other);
                self.tables(&v, What::Text("[[vm]]"), &VM_KEYS, false, |r, t| {
                    r.read_vm(t)
                })
            }
        }
    }

    fn read_meta(&mut self, root: &Tbl<'_, '_>) -> PlanMeta {
        let Some(tbl) = root
            .get("plan")
            .and_then(|v| self.table(v, What::Text("[plan]"), &PLAN_KEYS, true))
        else {
            if root.get("plan").is_none() {
                self.err("missing-table", 0..0, "the plan has no `[plan]` table")
                    .hint =
                    some("start the file with `[plan]`, `name = \"…\"` and `namespace = \"…\"`");
            }
            return PlanMeta {
                name: sp(String::new(), 0..0),
                namespace: sp(String::new(), 0..0),
                context: None,
                network_model: NetworkModel::L2,
                dns_server: None,
                checks_from: sp(ChecksFrom::Workstation, 0..0),
                probe_image: None,
                import_throughput: None,
                backend: sp(Backend::Cdi, 0..0),
                forklift_provider: None,
                forklift_plan_size: DEFAULT_FORKLIFT_PLAN_SIZE,
                policy: sp(PolicyMode::Off, 0..0),
                policy_sources: Vec::new(),
                probe_sources: Vec::new(),
                policy_settle: DEFAULT_POLICY_SETTLE,
                span: 0..0,
            };
        };
        let name = self.req_string(&tbl, "name", "\"payments\"");
        let namespace = self.req_string(&tbl, "namespace", "\"mig-payments\"");
        let context = self.string(&tbl, "context").map(|s| s.value);
        let network_model = self
            .choice(
                &tbl,
                "network_model",
                &[("l2", NetworkModel::L2), ("l3", NetworkModel::L3)],
            )
            .map(|m| m.value)
            .unwrap_or(NetworkModel::L2);
        let _ = self.string(&tbl, "description");
        let dns_server = self.string(&tbl, "dns_server");
        let checks_from = self
            .choice(
                &tbl,
                "checks_from",
                &[
                    ("workstation", ChecksFrom::Workstation),
                    ("cluster", ChecksFrom::Cluster),
                ],
            )
            .unwrap_or_else(|| sp(ChecksFrom::Workstation, 0..0));
        PlanMeta {
            name,
            namespace,
            context,
            network_model,
            dns_server,
            checks_from,
            probe_image: self.string(&tbl, "probe_image"),
            import_throughput: self.throughput(&tbl, "import_throughput"),
            backend: self
                .choice(
                    &tbl,
                    "backend",
                    &[("cdi", Backend::Cdi), ("forklift", Backend::Forklift)],
                )
                .unwrap_or_else(|| sp(Backend::Cdi, 0..0)),
            forklift_provider: self.string(&tbl, "forklift_provider"),
            forklift_plan_size: self
                .int(&tbl, "forklift_plan_size", 1, 10_000)
                .map_or(DEFAULT_FORKLIFT_PLAN_SIZE, |v| v.value as u32),
            policy: self
                .choice(
                    &tbl,
                    "policy",
                    &[
                        ("off", PolicyMode::Off),
                        ("draft", PolicyMode::Draft),
                        ("apply", PolicyMode::Apply),
                    ],
                )
                .unwrap_or_else(|| sp(PolicyMode::Off, 0..0)),
            policy_sources: self.string_list(&tbl, "policy_sources"),
            probe_sources: self.cidr_list(&tbl, "probe_sources"),
            policy_settle: self
                .duration(&tbl, "policy_settle")
                .unwrap_or(DEFAULT_POLICY_SETTLE),
            span: tbl.span.clone(),
        }
    }

    fn read_source(&mut self, root: &Tbl<'_, '_>) -> Source {
        let Some(tbl) = root
            .get("source")
            .and_then(|v| self.table(v, What::Text("[source]"), &SOURCE_KEYS, true))
        else {
            if root.get("source").is_none() {
                self.err("missing-table", 0..0, "the plan has no `[source]` table")
                    .hint =
                    Some("add `[source]` with `type = \"vsphere\"` or `type = \"http\"`".into());
            }
            return Source {
                kind: SourceKind::Http,
                url: None,
                credentials_secret: None,
                thumbprint: None,
                vddk_init_image: None,
                power_off: PowerOff::Manual,
                shutdown: Shutdown::default(),
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
                enable_cbt: false,
                allow_unquiesced: false,
                span: 0..0,
            };
        };
        if tbl.get("type").is_none() {
            self.missing(&tbl, "type", "\"vsphere\"");
        }
        let kind = self
            .choice(
                &tbl,
                "type",
                &[("vsphere", SourceKind::Vsphere), ("http", SourceKind::Http)],
            )
            .map(|k| k.value)
            .unwrap_or(SourceKind::Http);
        let power_off = self
            .choice(
                &tbl,
                "power_off",
                &[
                    ("vsphere-api", PowerOff::VsphereApi),
                    ("manual", PowerOff::Manual),
                ],
            )
            .map(|p| p.value)
            .unwrap_or(match kind {
                SourceKind::Vsphere => PowerOff::VsphereApi,
                SourceKind::Http => PowerOff::Manual,
            });
        Source {
            kind,
            url: self.string(&tbl, "url"),
            credentials_secret: self.string(&tbl, "credentials_secret"),
            thumbprint: self.string(&tbl, "thumbprint"),
            vddk_init_image: self.string(&tbl, "vddk_init_image"),
            power_off,
            shutdown: self
                .choice(
                    &tbl,
                    "shutdown",
                    &[
                        ("guest", Shutdown::Guest),
                        ("guest-then-hard", Shutdown::GuestThenHard),
                        ("hard", Shutdown::Hard),
                    ],
                )
                .map_or(Shutdown::default(), |s| s.value),
            shutdown_timeout: self
                .duration(&tbl, "shutdown_timeout")
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            enable_cbt: self.boolean(&tbl, "enable_cbt").is_some_and(|b| b.value),
            allow_unquiesced: self
                .boolean(&tbl, "allow_unquiesced")
                .is_some_and(|b| b.value),
            span: tbl.span.clone(),
        }
    }

    fn read_defaults(&mut self, root: &Tbl<'_, '_>) -> Defaults {
        let mut d = Defaults::default();
        let Some(tbl) = root
            .get("defaults")
            .and_then(|v| self.table(v, What::Text("[defaults]"), &DEFAULTS_KEYS, true))
        else {
            return d;
        };
        d.storage_class = self.string(&tbl, "storage_class");
        d.access_mode = self
            .choice(
                &tbl,
                "access_mode",
                &[
                    ("ReadWriteOnce", "ReadWriteOnce"),
                    ("ReadWriteMany", "ReadWriteMany"),
                    ("ReadOnlyMany", "ReadOnlyMany"),
                    ("ReadWriteOncePod", "ReadWriteOncePod"),
                ],
            )
            .map(|s| sp(s.value.to_string(), s.span));
        d.volume_mode = self
            .choice(
                &tbl,
                "volume_mode",
                &[("Block", "Block"), ("Filesystem", "Filesystem")],
            )
            .map(|s| sp(s.value.to_string(), s.span));
        d.checks = self.checks(&tbl);
        if let Some(dur) = self.duration(&tbl, "check_timeout") {
            d.check_timeout = dur;
        }
        if let Some(r) = self.int(&tbl, "check_retries", 0, 100) {
            d.check_retries = r.value as u32;
        }
        if let Some(r) = self.int(&tbl, "import_restart_limit", 1, 1000) {
            d.import_restart_limit = r.value as u32;
        }
        if let Some(dur) = self.duration(&tbl, "import_stall_timeout") {
            d.import_stall_timeout = dur;
        }
        d.guest_agent = self.boolean(&tbl, "guest_agent");
        d.firmware = self.firmware(&tbl);
        d.disk_bus = self.disk_bus(&tbl);
        d
    }

    fn firmware(&mut self, tbl: &Tbl<'_, '_>) -> Option<Spanned<Firmware>> {
        self.choice(
            tbl,
            "firmware",
            &[
                ("bios", Firmware::Bios),
                ("efi", Firmware::Efi),
                ("efi-secure", Firmware::EfiSecure),
            ],
        )
    }

    fn disk_bus(&mut self, tbl: &Tbl<'_, '_>) -> Option<Spanned<DiskBus>> {
        self.choice(
            tbl,
            "disk_bus",
            &[
                ("virtio", DiskBus::Virtio),
                ("sata", DiskBus::Sata),
                ("scsi", DiskBus::Scsi),
            ],
        )
    }

    fn boolean(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Option<Spanned<bool>> {
        let v = tbl.get(key)?;
        let (val, span) = conv(v);
        match val {
            DeValue::Boolean(b) => Some(sp(*b, span)),
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "`{key}` in {} must be true or false, found {}",
                        tbl.what,
                        type_name(other)
                    ),
                )
                .hint = some(format!("write `{key} = true` or `{key} = false`"));
                None
            }
        }
    }

    /// A duration string (`"500ms"`, `"2s"`, `"15m"`, `"1h"`).
    /// A throughput, `"150MiB/s"` (also `"150 MiB/s"`, `"1GiB/s"`, `"200MB/s"`, `"150Mi/s"`):
    /// bytes per second.
    fn throughput(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Option<Spanned<u64>> {
        let t = self.string(tbl, key)?;
        let parsed = t
            .value
            .trim()
            .strip_suffix("/s")
            .map(|q| q.trim_end().trim_end_matches('B').replace(' ', ""))
            .and_then(|q| Quantity::parse(&q).ok())
            .filter(|q| q.bytes > 0);
        match parsed {
            Some(q) => Some(sp(q.bytes, t.span)),
            None => {
                self.err(
                    "bad-throughput",
                    t.span,
                    format!("`{}` is not a throughput", t.value),
                )
                .hint = some("write bytes per second per import, e.g. \"150MiB/s\" or \"1GiB/s\"");
                None
            }
        }
    }

    fn duration(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Option<std::time::Duration> {
        let t = self.str_ref(tbl, key)?;
        let dur = parse_duration(t.value);
        if dur.is_none() {
            self.err(
                "bad-duration",
                t.span,
                format!("`{}` is not a duration", t.value),
            )
            .hint = some("write e.g. \"500ms\", \"2s\", \"15m\" or \"1h\"");
        }
        dur
    }

    fn checks(&mut self, tbl: &Tbl<'_, '_>) -> Vec<Spanned<CheckSpec>> {
        let Some(a) = self.array(tbl, "checks") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in a.iter() {
            let (val, span) = conv(item);
            match val {
                DeValue::String(s) => {
                    if let Some(k) = self.check_kind(s, span.clone()) {
                        out.push(sp(CheckSpec::new(k), span));
                    }
                }
                DeValue::Table(_) => {
                    let Some(ct) =
                        self.table(item, What::Text("a check table"), &CHECK_TABLE_KEYS, true)
                    else {
                        continue;
                    };
                    let Some(c) = self.string(&ct, "check") else {
                        if ct.get("check").is_none() {
                            self.missing(&ct, "check", "\"https://{ip}/health\"");
                        }
                        continue;
                    };
                    let Some(kind) = self.check_kind(&c, c.span.clone()) else {
                        continue;
                    };
                    let mut spec = CheckSpec::new(kind);
                    if let Some(e) = ct.get("expect") {
                        let (ev, es) = conv(e);
                        let codes: Vec<&toml::Spanned<DeValue<'_>>> = match ev {
                            DeValue::Array(a) => a.iter().collect(),
                            _ => vec![e],
                        };
                        for code in codes {
                            let (cv, cs) = conv(code);
                            match cv {
                                DeValue::Integer(i) => match i.as_str().parse::<u16>() {
                                    Ok(n) if (100..=599).contains(&n) && i.radix() == 10 => {
                                        spec.expect.push(n)
                                    }
                                    _ => {
                                        self.err(
                                            "bad-check",
                                            cs,
                                            format!("`{i}` is not an HTTP status (100–599)"),
                                        );
                                    }
                                },
                                other => {
                                    self.err(
                                        "wrong-type",
                                        cs,
                                        format!("`expect` must be an HTTP status or a list of them, found {}", type_name(other)),
                                    );
                                }
                            }
                        }
                        if !matches!(spec.kind, crate::plan::check::CheckKind::Http { .. }) {
                            self.err("bad-check", es, "`expect` applies only to http(s) checks");
                        }
                    }
                    if let Some(t) = self.string(&ct, "timeout") {
                        match parse_duration(&t) {
                            Some(d) => spec.timeout = Some(d),
                            None => {
                                self.err(
                                    "bad-duration",
                                    t.span,
                                    format!("`{}` is not a duration", t.value),
                                )
                                .hint = some("write e.g. \"500ms\", \"2s\" or \"1m\"");
                            }
                        }
                    }
                    if let Some(r) = self.int(&ct, "retries", 0, 100) {
                        spec.retries = Some(r.value as u32);
                    }
                    out.push(sp(spec, span));
                }
                other => {
                    self.err(
                        "wrong-type",
                        span,
                        format!(
                            "a check must be a string or a table, found {}",
                            type_name(other)
                        ),
                    );
                }
            }
        }
        out
    }

    fn check_kind(&mut self, text: &str, span: Span) -> Option<crate::plan::check::CheckKind> {
        match parse_check(text) {
            Ok(k) => Some(k),
            Err(e) => {
                let head = text.split(':').next().unwrap_or(text);
                let names = known_kinds()
                    .iter()
                    .map(|k| k.split(':').next().unwrap_or(k));
                let hint = did_you_mean(head, names)
                    .unwrap_or_else(|| format!("checks are: {}", known_kinds().join(", ")));
                self.err("bad-check", span, format!("check `{text}`: {e}"))
                    .hint = some(hint);
                None
            }
        }
    }

    fn read_network(&mut self, tbl: &Tbl<'_, '_>) -> Network {
        let name = self.req_string(tbl, "name", "\"vlan-210\"");
        let vlan = self.int(tbl, "vlan", i64::MIN, i64::MAX).and_then(|v| {
            if (1..=4094).contains(&v.value) {
                Some(sp(v.value as u16, v.span))
            } else {
                self.err(
                    "bad-vlan",
                    v.span,
                    format!("VLAN {} is outside 1–4094", v.value),
                )
                .hint = some("802.1Q VLAN IDs run from 1 to 4094 (0 and 4095 are reserved)");
                None
            }
        });
        if tbl.get("provider").is_none() {
            self.missing(tbl, "provider", "\"bridge\"");
        }
        // `calico-l2` was withdrawn: Calico's CNI has no VLAN or L2-network field to build it
        // on (projectcalico/calico `cni-plugin/pkg/types/types.go`, `NetConf`).
        let withdrawn = tbl.get("provider").and_then(|v| match conv(v) {
            (DeValue::String(s), span) if s.as_ref() == "calico-l2" => Some(span),
            _ => None,
        });
        let provider = match withdrawn {
            Some(span) => {
                self.err(
                    "unsupported-provider",
                    span.clone(),
                    "provider `calico-l2` is not supported: Calico's CNI carries no VLAN, so no NetworkAttachmentDefinition can put a VM on this network",
                )
                .hint = some(
                    "to keep IP, MAC and VLAN use `provider = \"bridge\"` (a Linux bridge trunking the VLAN on every node) or `provider = \"ovn-localnet\"` (OVN-Kubernetes); on Calico's pod network set `network_model = \"l3\"` for the VM (it gets a new IP)",
                );
                sp(Provider::Bridge, span)
            }
            None => self
                .choice(
                    tbl,
                    "provider",
                    &[
                        ("bridge", Provider::Bridge),
                        ("ovn-localnet", Provider::OvnLocalnet),
                    ],
                )
                .unwrap_or_else(|| sp(Provider::Bridge, header_span(tbl.span.clone()))),
        };
        let cidr = self
            .string(tbl, "cidr")
            .and_then(|c| match c.parse::<ipnet::IpNet>() {
                Ok(net) if net.trunc() == net => Some(sp(net, c.span)),
                Ok(net) => {
                    self.err(
                        "bad-cidr",
                        c.span,
                        format!("`{}` has host bits set", c.value),
                    )
                    .hint = some(format!("did you mean `{}`?", net.trunc()));
                    None
                }
                Err(_) => {
                    self.err("bad-cidr", c.span, format!("`{}` is not a CIDR", c.value))
                        .hint =
                        Some("write a network and prefix length, e.g. \"198.51.100.0/24\"".into());
                    None
                }
            });
        let gateway = self.ip(tbl, "gateway");
        let mtu = self.int(tbl, "mtu", 576, 9216).map(|m| m.value as u32);
        Network {
            name,
            vlan,
            provider,
            bridge: self.string(tbl, "bridge"),
            physical_network: self.string(tbl, "physical_network"),
            cidr,
            gateway,
            mtu,
            owner: self.string(tbl, "owner").map(|s| s.value),
            bridge_marker: self.boolean(tbl, "bridge_marker").is_none_or(|b| b.value),
            probe_ip: self.ip(tbl, "probe_ip"),
            l2_path: self
                .choice(
                    tbl,
                    "l2_path",
                    &[("warn", L2Path::Warn), ("required", L2Path::Required)],
                )
                .map_or(L2Path::Warn, |p| p.value),
            l2_probe_target: self.ip(tbl, "l2_probe_target"),
            source_network: self.string(tbl, "source_network"),
            multi_network_policy: self.string(tbl, "multi_network_policy"),
            span: tbl.span.clone(),
        }
    }

    fn read_wave(&mut self, tbl: &Tbl<'_, '_>) -> Wave {
        let name = self.req_string(tbl, "name", "\"w1\"");
        let window = tbl
            .get("window")
            .and_then(|v| self.table(v, What::Text("the wave's `window`"), &WINDOW_KEYS, true))
            .and_then(|w| {
                let start = self.timestamp(&w, "start");
                let end = self.timestamp(&w, "end");
                Some(Window {
                    start: start?,
                    end: end?,
                })
            });
        let imports = self
            .int(tbl, "max_parallel_imports", 1, 1000)
            .map_or(4, |v| v.value as u32);
        let cutovers = self
            .int(tbl, "max_parallel_cutovers", 1, 1000)
            .map_or(2, |v| v.value as u32);
        Wave {
            name,
            window,
            max_parallel_imports: imports,
            max_parallel_cutovers: cutovers,
            max_imports_per_host: self
                .int(tbl, "max_imports_per_host", 1, 1000)
                .map_or(DEFAULT_IMPORTS_PER_HOST, |v| v.value as u32),
            max_imports_per_datastore: self
                .int(tbl, "max_imports_per_datastore", 1, 1000)
                .map_or(DEFAULT_IMPORTS_PER_DATASTORE, |v| v.value as u32),
            import_limits_span: ["max_imports_per_host", "max_imports_per_datastore"]
                .iter()
                .find_map(|k| tbl.get(k).map(|v| v.span())),
            migration: self.migration(tbl),
            precopy_interval: self
                .duration(tbl, "precopy_interval")
                .unwrap_or(DEFAULT_PRECOPY_INTERVAL),
            span: tbl.span.clone(),
        }
    }

    fn timestamp(&mut self, tbl: &Tbl<'_, '_>, key: &str) -> Option<Spanned<time::Timestamp>> {
        let Some(v) = tbl.get(key) else {
            self.missing(tbl, key, "2026-12-05T22:00:00Z");
            return None;
        };
        self.timestamp_value(v, key, "of a window", "bad-window")
    }

    /// A date-time with an offset (a TOML date-time or an RFC 3339 string); `whose` and
    /// `code` name it in errors.
    fn timestamp_value(
        &mut self,
        v: &toml::Spanned<DeValue<'_>>,
        key: &str,
        whose: &str,
        code: &'static str,
    ) -> Option<Spanned<time::Timestamp>> {
        let (val, span) = conv(v);
        let res = match val {
            DeValue::Datetime(dt) => time::from_datetime(dt),
            DeValue::String(s) => time::parse(s),
            other => {
                self.err(
                    "wrong-type",
                    span,
                    format!(
                        "`{key}` {whose} must be a date-time, found {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        match res {
            Ok(t) => Some(sp(t, span)),
            Err(why) => {
                self.err(code, span, format!("`{key}` {whose}: {why}"));
                None
            }
        }
    }

    fn read_vm(&mut self, tbl: &Tbl<'_, '_>) -> Vm {
        // Its unknown keys are reported below, once the VM can be named in the message.
        let name = self.req_string(tbl, "name", "\"pay-db-01\"");
        // The name as written (borrowed from the tree); `req_string` left it empty when
        // it is missing, not a string or blank.
        let vm_name = match tbl.get("name").map(|v| v.get_ref()) {
            Some(DeValue::String(s)) if !name.is_empty() => Some(s.as_ref()),
            _ => None,
        };
        let tbl = &Tbl {
            span: tbl.span.clone(),
            what: What::Vm(vm_name),
            ..*tbl
        };
        self.unknown_keys(tbl);
        let wave = self.req_string(tbl, "wave", "\"w1\"");
        let source_id = self.string(tbl, "source_id");
        if tbl.get("cpu").is_none() {
            self.missing(tbl, "cpu", "2");
        }
        let cpu = self.int(tbl, "cpu", 1, 1024).map_or(1, |c| c.value as u32);
        let memory = self.quantity(tbl, "memory", "\"8Gi\"");
        let network_model = self.choice(
            tbl,
            "network_model",
            &[("l2", NetworkModel::L2), ("l3", NetworkModel::L3)],
        );
        let nics = match tbl.get("nics") {
            Some(v) => self.tables(v, What::OfVm("nics", vm_name), &NIC_KEYS, true, |r, t| {
                r.read_nic(t)
            }),
            None => Vec::new(),
        };
        let disks = match tbl.get("disks") {
            Some(v) => self.tables(v, What::OfVm("disks", vm_name), &DISK_KEYS, true, |r, t| {
                r.read_disk(t)
            }),
            None => {
                self.missing(
                    tbl,
                    "disks",
                    "[{ backing_file = \"[ds1] vm/vm.vmdk\", size = \"40Gi\" }]",
                );
                Vec::new()
            }
        };
        let checks = self.checks(tbl);
        let after = self.string_list(tbl, "after");
        let cutover = tbl
            .get("cutover")
            .and_then(|v| self.timestamp_value(v, "cutover", "of a VM", "bad-cutover"));
        Vm {
            name,
            wave,
            source_id,
            cpu,
            memory,
            network_model,
            nics,
            disks,
            checks,
            after,
            owner: self.string(tbl, "owner").map(|s| s.value),
            host: self.string(tbl, "host"),
            guest_agent: self.boolean(tbl, "guest_agent"),
            firmware: self.firmware(tbl),
            disk_bus: self.disk_bus(tbl),
            os: self.choice(
                tbl,
                "os",
                &[
                    ("linux", GuestOs::Linux),
                    ("windows", GuestOs::Windows),
                    ("other", GuestOs::Other),
                ],
            ),
            cutover,
            migration: self.migration(tbl),
            span: tbl.span.clone(),
        }
    }

    fn migration(&mut self, tbl: &Tbl<'_, '_>) -> Option<Spanned<Migration>> {
        self.choice(
            tbl,
            "migration",
            &[("cold", Migration::Cold), ("warm", Migration::Warm)],
        )
    }

    fn read_nic(&mut self, tbl: &Tbl<'_, '_>) -> Nic {
        let network = self.req_string(tbl, "network", "\"vlan-210\"");
        let ip = self.ip(tbl, "ip");
        if tbl.get("mac").is_none() {
            self.missing(tbl, "mac", "\"00:50:56:ab:cd:01\"");
        }
        let mac = match self.str_ref(tbl, "mac") {
            Some(m) => match Mac::parse(m.trim()) {
                Some(mac) => sp(mac, m.span),
                None => {
                    self.err(
                        "bad-mac",
                        m.span.clone(),
                        format!("`{}` is not a MAC address", m.value),
                    )
                    .hint = some("write six hex octets, e.g. \"00:50:56:ab:cd:01\"");
                    sp(Mac([0; 6]), m.span)
                }
            },
            None => sp(Mac([0; 6]), header_span(tbl.span.clone())),
        };
        Nic {
            network,
            ip,
            mac,
            model: self.choice(
                tbl,
                "model",
                &[("virtio", NicModel::Virtio), ("e1000e", NicModel::E1000e)],
            ),
            span: tbl.span.clone(),
        }
    }

    fn read_disk(&mut self, tbl: &Tbl<'_, '_>) -> Disk {
        let size = self.quantity(tbl, "size", "\"40Gi\"");
        Disk {
            backing_file: self.string(tbl, "backing_file"),
            url: self.string(tbl, "url"),
            size,
            storage_class: self.string(tbl, "storage_class"),
            span: tbl.span.clone(),
        }
    }
}

/// Points a "missing key" diagnostic at the first line of a table rather than all of it.
fn header_span(span: Span) -> Span {
    span.start..span.start.max(span.end.min(span.start + 1))
}
