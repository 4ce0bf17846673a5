//! A small JSON reader that keeps the byte offset of every value, so a rule's origin can name
//! the line of its JSON element. Nesting is limited; errors are values, never panics.

const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// The number as written.
    Num(String),
    Str(String),
    Arr(Vec<Node>),
    /// Keys in document order (a repeated key: the last one wins for `get`).
    Obj(Vec<(String, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: usize,
    pub v: J,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.v {
            J::Obj(kv) => kv.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn str(&self) -> Option<&str> {
        match &self.v {
            J::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn arr(&self) -> &[Node] {
        match &self.v {
            J::Arr(a) => a,
            _ => &[],
        }
    }
    pub fn obj(&self) -> &[(String, Node)] {
        match &self.v {
            J::Obj(o) => o,
            _ => &[],
        }
    }
    pub fn int(&self) -> Option<i64> {
        match &self.v {
            J::Num(n) => n.parse().ok(),
            J::Str(s) => s.parse().ok(),
            _ => None,
        }
    }
    /// Compact JSON text (for messages), at most ~200 characters.
    pub fn compact(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        if s.len() > 200 {
            let mut end = 197;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str("...");
        }
        s
    }
    fn write(&self, s: &mut String) {
        if s.len() > 400 {
            return;
        }
        match &self.v {
            J::Null => s.push_str("null"),
            J::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => s.push_str(n),
            J::Str(x) => {
                s.push('"');
                s.push_str(x);
                s.push('"');
            }
            J::Arr(a) => {
                s.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    x.write(s);
                }
                s.push(']');
            }
            J::Obj(o) => {
                s.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push('"');
                    s.push_str(k);
                    s.push_str("\":");
                    x.write(s);
                }
                s.push('}');
            }
        }
    }
}

/// A firewall export's JSON and its line index, or, when it is not JSON, the rule set of
/// format `format` that says so at the line where it broke.
pub fn parse_export(
    file: &str,
    text: &str,
    format: &'static str,
) -> Result<(Node, super::common::LineIndex), crate::policy::rules::RuleSet> {
    let lines = super::common::LineIndex::new(text);
    match parse(text) {
        Ok(v) => Ok((v, lines)),
        Err((at, e)) => Err(crate::policy::rules::RuleSet {
            file: file.into(),
            format,
            lists: Vec::new(),
            warnings: vec![format!("{file}:{}: not JSON: {e}", lines.line(at))],
        }),
    }
}

/// Parses a whole document; `Err((offset, message))`.
pub fn parse(text: &str) -> Result<Node, (usize, String)> {
    let mut p = P {
        b: text.as_bytes(),
        i: 0,
        text,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i < p.b.len() {
        return Err((p.i, "trailing characters after the JSON value".into()));
    }
    Ok(v)
}

struct P<'t> {
    b: &'t [u8],
    i: usize,
    text: &'t str,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn err<T>(&self, m: &str) -> Result<T, (usize, String)> {
        Err((self.i, m.to_string()))
    }
    fn lit(&mut self, w: &str, v: J) -> Result<Node, (usize, String)> {
        let pos = self.i;
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(Node { pos, v })
        } else {
            self.err("invalid literal")
        }
    }
    fn value(&mut self, depth: usize) -> Result<Node, (usize, String)> {
        if depth > MAX_DEPTH {
            return self.err("nested too deep");
        }
        let pos = self.i;
        match self.b.get(self.i) {
            None => self.err("unexpected end of input"),
            Some(b'{') => {
                self.i += 1;
                let mut kv = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Node { pos, v: J::Obj(kv) });
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.err("expected a key");
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return self.err("expected `:`");
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    kv.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Node { pos, v: J::Obj(kv) });
                        }
                        _ => return self.err("expected `,` or `}`"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Node { pos, v: J::Arr(a) });
                }
                loop {
                    self.ws();
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Node { pos, v: J::Arr(a) });
                        }
                        _ => return self.err("expected `,` or `]`"),
                    }
                }
            }
            Some(b'"') => Ok(Node {
                pos,
                v: J::Str(self.string()?),
            }),
            Some(b't') => self.lit("true", J::Bool(true)),
            Some(b'f') => self.lit("false", J::Bool(false)),
            Some(b'n') => self.lit("null", J::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                Ok(Node {
                    pos,
                    v: J::Num(self.text[pos..self.i].to_string()),
                })
            }
            Some(_) => self.err("unexpected character"),
        }
    }
    fn hex4(&mut self) -> Result<u32, (usize, String)> {
        let h = self
            .text
            .get(self.i..self.i + 4)
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => self.err("bad \\u escape"),
        }
    }
    fn string(&mut self) -> Result<String, (usize, String)> {
        self.i += 1; // opening quote
        let mut out = String::new();
        let mut start = self.i;
        loop {
            match self.b.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    out.push_str(&self.text[start..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.text[start..self.i]);
                    self.i += 1;
                    let c = self.b.get(self.i).copied();
                    self.i += 1;
                    match c {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let mut c = self.hex4()?;
                            if (0xD800..0xDC00).contains(&c) && self.b[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                c = 0x10000
                                    + ((c - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                        }
                        _ => return self.err("bad escape"),
                    }
                    start = self.i;
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

/// Unused helper kept small: keys of an object as a sorted map (for tests).
#[cfg(test)]
fn keys(n: &Node) -> std::collections::BTreeMap<&str, &Node> {
    n.obj().iter().map(|(k, v)| (k.as_str(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_values() {
        let t = "{\"a\": [1, \"x\\u00e9\\n\"],\n \"b\": {\"c\": null}}";
        let n = parse(t).unwrap();
        let k = keys(&n);
        assert_eq!(k["a"].arr()[1].str(), Some("xé\n"));
        assert_eq!(k["a"].arr()[0].int(), Some(1));
        assert_eq!(n.get("b").map(|b| b.pos), Some(t.find("{\"c\"").unwrap()));
        assert_eq!(
            n.get("b").and_then(|b| b.get("c")).map(|c| &c.v),
            Some(&J::Null)
        );
    }

    #[test]
    fn hostile() {
        assert!(parse("{\"a\": [1, 2").is_err());
        assert!(parse(&"[".repeat(10_000)).is_err());
        assert!(parse("\"\\ud800").is_err());
        assert!(parse("\"\\uZZZZ\"").is_err());
        assert!(parse("{} x").is_err());
        assert!(parse("").is_err());
    }
}
