//! Label and field selectors as list and watch queries carry them.

use serde_json::Value;

use super::status::{go_quote, ApiError};

/// What selectors look at, extracted once per stored object: name, namespace, labels
/// and the few other fields a field selector may name. Small next to the object itself,
/// so the store keeps objects serialised and filters on this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectable {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    pub namespace: String,
    /// `metadata.labels`, sorted by key.
    pub labels: Vec<(String, String)>,
    /// Other selectable fields present on the object (`involvedObject.kind`, ...).
    pub fields: Vec<(&'static str, String)>,
}

impl Selectable {
    /// Extract from an object of a kind.
    pub fn of(kind: &str, obj: &Value) -> Self {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut labels: Vec<(String, String)> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let extra: &[&'static str] = match kind {
            "Event" => EVENT_FIELDS,
            "VirtualMachineInstance" => &["status.nodeName"],
            "Pod" => POD_FIELDS,
            _ => &[],
        };
        let fields = extra
            .iter()
            .filter_map(|path| {
                let mut cur = Some(obj);
                for seg in path.split('.') {
                    cur = cur.and_then(|c| c.get(seg));
                }
                let v = match cur? {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o
                        .get("component")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((*path, v))
            })
            .collect();
        Selectable {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            labels,
            fields,
        }
    }

    fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(lk, _)| lk.as_str().cmp(k))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    fn field(&self, path: &str) -> &str {
        match path {
            "metadata.name" => &self.name,
            "metadata.namespace" => &self.namespace,
            p => self
                .fields
                .iter()
                .find(|(k, _)| *k == p)
                .map_or("", |(_, v)| v.as_str()),
        }
    }
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `k=v` / `k==v`.
    Eq(String, String),
    /// `k!=v` (also matches objects without the label).
    NotEq(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)` (also matches objects without the label).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
    /// `k>n`: the label is an integer greater than n.
    Gt(String, i64),
    /// `k<n`: the label is an integer less than n.
    Lt(String, i64),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

impl LabelSelector {
    /// Parse the `labelSelector` query syntax as the API server does (a port of
    /// apimachinery pkg/labels/selector.go `Parse`: its lexer, grammar, validation and
    /// messages), answering 400 Bad Request with the parser's message when it fails.
    /// `k in ()` is valid there: the empty set is read as the empty value, `k in ("")`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Parser::new(s)
            .parse()
            .map(LabelSelector)
            .map_err(ApiError::bad_request)
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Selectable) -> bool {
        let get = |k: &str| obj.label(k);
        let int = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => int(k).is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => int(k).is_some_and(|x| x < *n),
        })
    }
}

/// The label selector lexer's tokens (apimachinery labels `Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Split a selector into tokens as apimachinery's `Lexer` does.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            // The longest run of special symbols that is still a token.
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                pos += 1;
                match keyword(&s[start..pos]) {
                    Some(t) => last = Some((t, pos)),
                    None if last.is_some() => {
                        pos -= 1;
                        break;
                    }
                    None => {}
                }
            }
            match last {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, s[start..end].to_string()));
                }
                None => out.push((
                    Tok::Error,
                    format!("error expected: keyword found '{}'", &s[start..pos]),
                )),
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_space(b[pos]) {
                pos += 1;
            }
            let word = &s[start..pos];
            let tok = keyword(word).unwrap_or(Tok::Identifier);
            out.push((tok, word.to_string()));
        }
    }
}

/// The label selector parser (apimachinery labels `Parser`).
struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

/// `in` and `notin` are plain identifiers where a value is expected.
fn as_value(t: Tok) -> Tok {
    match t {
        Tok::In | Tok::NotIn => Tok::Identifier,
        t => t,
    }
}

impl Parser {
    fn new(s: &str) -> Self {
        Parser {
            items: lex(s),
            pos: 0,
        }
    }

    fn lookahead(&self, values: bool) -> (Tok, String) {
        let (t, l) = self.items[self.pos.min(self.items.len() - 1)].clone();
        (if values { as_value(t) } else { t }, l)
    }

    fn consume(&mut self, values: bool) -> (Tok, String) {
        let item = self.lookahead(values);
        self.pos = (self.pos + 1).min(self.items.len());
        item
    }

    fn parse(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.lookahead(true);
            match t {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(true);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(true);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        let mut not = false;
        let (mut t, mut key) = self.consume(true);
        if t == Tok::DoesNotExist {
            not = true;
            (t, key) = self.consume(true);
        }
        if t != Tok::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        if let Some(why) = label_key_error(&key) {
            return Err(format!("<nil>: Invalid value: {}: {why}", go_quote(&key)));
        }
        // `!key` is complete whatever follows (what does is refused by the caller).
        if not {
            return Ok(LabelReq::NotExists(key));
        }
        let (next, _) = self.lookahead(true);
        if next == Tok::End || next == Tok::Comma {
            return Ok(LabelReq::Exists(key));
        }
        let (op, lit) = self.consume(false);
        let values = match op {
            Tok::In | Tok::NotIn => self.set()?,
            Tok::Equals | Tok::DoubleEquals | Tok::NotEquals | Tok::GreaterThan | Tok::LessThan => {
                self.exact_value()?
            }
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        };
        requirement(key, op, values)
    }

    fn set(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.consume(true);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.lookahead(true);
        match t {
            Tok::Identifier | Tok::Comma => {
                let s = self.identifiers()?;
                let (t, _) = self.consume(true);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::ClosedPar => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        fn insert(s: &mut Vec<String>, v: String) {
            if !s.contains(&v) {
                s.push(v);
            }
        }
        let mut s: Vec<String> = Vec::new();
        loop {
            let (t, lit) = self.consume(true);
            match t {
                Tok::Identifier => {
                    insert(&mut s, lit);
                    let (t2, l2) = self.lookahead(true);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(s),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        insert(&mut s, String::new());
                    }
                    let (t2, _) = self.lookahead(true);
                    if t2 == Tok::ClosedPar {
                        insert(&mut s, String::new());
                        return Ok(s);
                    }
                    if t2 == Tok::Comma {
                        insert(&mut s, String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.lookahead(true);
        if t == Tok::End || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.consume(true);
        if t == Tok::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// apimachinery labels `NewRequirement`: the values checked for the operator, each a valid
/// label value (messages as `field.ErrorList.ToAggregate`).
fn requirement(key: String, op: Tok, mut values: Vec<String>) -> Result<LabelReq, String> {
    values.sort();
    let mut errs = Vec::new();
    let ints: Vec<Option<i64>> = values.iter().map(|v| v.parse::<i64>().ok()).collect();
    if matches!(op, Tok::GreaterThan | Tok::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if ints[i].is_none() {
                errs.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(v)
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(why) = label_value_error(v) {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {why}",
                go_quote(v)
            ));
        }
    }
    match errs.len() {
        0 => {}
        1 => return Err(errs.remove(0)),
        _ => return Err(format!("[{}]", errs.join(", "))),
    }
    let one = || values.first().cloned().unwrap_or_default();
    Ok(match op {
        Tok::In => LabelReq::In(key, values),
        Tok::NotIn => LabelReq::NotIn(key, values),
        Tok::NotEquals => LabelReq::NotEq(key, one()),
        Tok::GreaterThan => LabelReq::Gt(key, ints[0].unwrap_or_default()),
        Tok::LessThan => LabelReq::Lt(key, ints[0].unwrap_or_default()),
        _ => LabelReq::Eq(key, one()),
    })
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// apimachinery util/validation `RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_string();
    if examples.is_empty() {
        return format!("{out} (regex used for validation is '{fmt}')");
    }
    out.push_str(" (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|l| {
        let b = l.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

/// apimachinery util/validation `IsQualifiedName` (what `IsLabelKey` checks), its
/// messages joined with "; "; `None` when the key is valid.
fn label_key_error(k: &str) -> Option<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = k.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            name
        }
        _ => {
            return Some(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ))
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// apimachinery util/validation `IsValidLabelValue`; `None` when the value is valid.
fn label_value_error(v: &str) -> Option<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !is_qualified_name_part(v) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// One field requirement: `path=value` or `path!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    /// Dotted field path (`metadata.name`, `involvedObject.kind`).
    pub path: String,
    /// Expected value.
    pub value: String,
    /// `!=` rather than `=`.
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

const POD_FIELDS: &[&str] = &["spec.nodeName", "status.phase"];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

impl FieldSelector {
    /// Parse a `fieldSelector` for a kind; only supported field labels are accepted.
    pub fn parse(s: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (path, value, negate) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                // apimachinery pkg/fields/selector.go `parseSelector`.
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let path = path.trim();
            let supported = matches!(path, "metadata.name" | "metadata.namespace")
                || (kind == "Event" && EVENT_FIELDS.contains(&path))
                || (kind == "VirtualMachineInstance" && path == "status.nodeName")
                || (kind == "Pod" && POD_FIELDS.contains(&path));
            if !supported {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            reqs.push(FieldReq {
                path: path.to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether an object satisfies every requirement (missing fields read as `""`).
    pub fn matches(&self, obj: &Selectable) -> bool {
        self.0
            .iter()
            .all(|r| (obj.field(&r.path) == r.value) != r.negate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_operators() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "db"}}});
        let o = Selectable::of("Secret", &o);
        let t = |s: &str| LabelSelector::parse(s).map(|l| l.matches(&o));
        assert_eq!(t("app=web"), Ok(true));
        assert_eq!(t("app==web"), Ok(true));
        assert_eq!(t("app!=web"), Ok(false));
        assert_eq!(t("app in (x, web)"), Ok(true));
        assert_eq!(t("app notin (x,web)"), Ok(false));
        assert_eq!(t("tier,app"), Ok(true));
        assert_eq!(t("!tier"), Ok(false));
        assert_eq!(t("!zone,app in (web),tier notin (x)"), Ok(true));
        assert!(t("app in web").is_err());
        // The empty set is the empty value, as upstream reads it.
        assert_eq!(t("app in ()"), Ok(false));
        let blank = Selectable::of("Secret", &json!({"metadata": {"labels": {"app": ""}}}));
        assert!(LabelSelector::parse("app in ()").is_ok_and(|l| l.matches(&blank)));
        assert_eq!(t("app notin ()"), Ok(true));
        let n = Selectable::of("Secret", &json!({"metadata": {"labels": {"n": "7"}}}));
        let gt = |s: &str| LabelSelector::parse(s).map(|l| l.matches(&n));
        assert_eq!(gt("n>5"), Ok(true));
        assert_eq!(gt("n<5"), Ok(false));
    }

    #[test]
    fn label_selector_errors_are_the_apimachinery_parser_messages() {
        let e = |s: &str| LabelSelector::parse(s).expect_err(s).message;
        assert_eq!(
            e("a/b/c=d"),
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        assert_eq!(
            e("a in ("),
            "unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert_eq!(
            e("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(e("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(e("a,"), "found '', expected: identifier after ','");
        assert_eq!(e("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            e("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(e("a=b c d"), "found 'c', expected: ',' or 'end of string'");
        assert!(e("a=-x").starts_with(
            "unable to parse requirement: values[0][a]: Invalid value: \"-x\": a valid label must be an empty string"
        ));
        assert_eq!(
            e(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
    }

    #[test]
    fn field_selectors() {
        let o =
            json!({"metadata": {"name": "a", "namespace": "n"}, "involvedObject": {"kind": "Pod"}});
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=x", "Secret");
        assert!(f.is_ok_and(|f| f.matches(&Selectable::of("Secret", &o))));
        assert!(FieldSelector::parse("spec.foo=a", "Secret").is_err());
        let e = FieldSelector::parse("involvedObject.kind=Pod,involvedObject.fieldPath=", "Event");
        assert!(e.is_ok_and(|f| f.matches(&Selectable::of("Event", &o))));
    }
}
