//! Architecture: no dependency cycles between the crate's modules, nor between the files of
//! one module (`src/`; not `main.rs`, which is the binary and reaches the library as
//! `wavelift::`).
//!
//! The test reads every `src/**/*.rs` as text (comments, strings and char literals removed)
//! and collects each file's references into the crate:
//!
//! - every leaf of every `use` tree (`use crate::{a::b, c}`, `use super::super::x`,
//!   `use self::y::{self, z as w}`, `use child::*`), at any depth (also inside fn bodies);
//! - every path in code whose first segment is `crate`, `super`, `self`, a child module of
//!   the module it is in, or a name that module imported with `use`
//!   (`crate::engine::runtime::spawn(…)`, `super::view::popup::help_lines(…)`,
//!   `layout::list_rows(…)` after `use super::view::layout;`).
//!
//! Paths resolve the way rustc resolves them, as far as text allows: `super` and `self` count
//! from the module the path is in, inline modules included (in `mod tests { use super::*; }`
//! `super` is the file itself), and a name a module re-exports (`pub use events::X`,
//! `pub use model::*`) resolves to the file that defines it. A path to a module is a path to
//! its file (`mod.rs` for a folder); an item that is not found (made by a macro or a derive)
//! is in the deepest module the path reached.
//!
//! Two graphs must be acyclic; a failure names every cycle (its strongly connected
//! component) with every edge in it and the first reference behind each edge:
//!
//! - the module level: the top-level modules (`plan`, `checks`, `engine`, `tui`, …), with
//!   `a → b` when a file of `a` references a file of `b`;
//! - the file level, for each top-level module: its files (in any of its folders), with
//!   `f → g` when `f` references `g`.
//!
//! Rules:
//! - `#[cfg(test)]` code counts like any other code of its file: a unit test's
//!   `use super::*` is its own file (no edge); a test that reaches into another file is a
//!   dependency of its file like any other.
//! - An edge between a folder's own file (`mod.rs`; `lib.rs` for the crate) and a file below
//!   that folder does not count: that is parent and child, not two peers. The folder's file
//!   declares its children and re-exports their items (`pub use x::Item`), so it always
//!   reaches them, and the children use what the folder defines for all of them
//!   (`use super::Shared`); counting those would make every such folder a cycle. No peer edge
//!   is lost: a child that reaches a sibling's item through the folder's re-export
//!   (`super::Item`, `crate::engine::Item`) resolves to the sibling's file. Not excluded: a
//!   folder's `mod.rs` and a file outside that folder (`tui/view/mod.rs` and `tui/app.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------------- lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Open(char),
    Close(char),
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source as tokens, without comments, string/char literals and numbers.
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_start(&c, i) {
            // r"…", r#"…"#, br#"…"#, cr"…": no escapes; ends at `"` and as many `#`.
            let hashes = c[i..i + len].iter().filter(|&&h| h == '#').count();
            i += len;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                line += usize::from(c[i] == '\n');
                i += 1;
            }
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            i += if ch == '"' { 1 } else { 2 };
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            // A char literal ('x', '\n', '\u{1F600}', b'x') or a lifetime ('a, 'static).
            let q = if ch == 'b' { i + 1 } else { i };
            if at(q + 1) == '\\' {
                // Skip the escaped character (it may be a quote), then find the closing one.
                let mut j = q + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(q + 2) == '\'' {
                i = q + 3;
            } else {
                // Lifetime: skip the quote; the name lexes as an identifier nobody reads.
                i = q + 1;
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            // Raw identifiers: r#type is `type`.
            if ch == 'r' && at(i + 1) == '#' && (at(i + 2).is_alphabetic() || at(i + 2) == '_') {
                i += 2;
            }
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(c[s..i].iter().collect()),
                line,
            });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::Path,
                line,
            });
            i += 2;
        } else {
            let tok = match ch {
                '{' | '(' | '[' => Tok::Open(ch),
                '}' | ')' | ']' => Tok::Close(ch),
                _ => Tok::Punct(ch),
            };
            out.push(Token { tok, line });
            i += 1;
        }
    }
    out
}

/// The length of a raw string's opening (`r"`, `r##"`, `br#"`, `cr"`) at `i`, if one starts.
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    while c.get(j) == Some(&'#') {
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some(j + 1 - i)
}

// ------------------------------------------------------------------------------ parser

/// A path as written, in the module it is written in.
#[derive(Clone, Debug)]
struct Raw {
    scope: Vec<String>,
    segs: Vec<String>,
}

/// One reference from a file: where, the text, and the path.
#[derive(Clone, Debug)]
struct Ref {
    file: usize,
    line: usize,
    raw: Raw,
}

#[derive(Default, Debug)]
struct Module {
    /// The file the module is in (an inline module is in its parent's file).
    file: usize,
    children: BTreeSet<String>,
    items: BTreeSet<String>,
    aliases: BTreeMap<String, Raw>,
    globs: Vec<Raw>,
}

struct Crate {
    /// `src/`-relative file names; index = file id.
    files: Vec<String>,
    /// Each file's module path (`tui/view/layout.rs` → `["tui", "view", "layout"]`).
    file_mods: Vec<Vec<String>>,
    modules: BTreeMap<Vec<String>, Module>,
    refs: Vec<Ref>,
}

const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "trait", "type", "const", "static", "union",
];
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "union",
];

fn ident(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token {
            tok: Tok::Ident(s), ..
        }) => Some(s),
        _ => None,
    }
}

fn is(t: Option<&Token>, want: &Tok) -> bool {
    t.is_some_and(|t| &t.tok == want)
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut paths = Vec::new();
        collect_rs(src, &mut paths);
        paths.sort();
        let mut k = Crate {
            files: Vec::new(),
            file_mods: Vec::new(),
            modules: BTreeMap::new(),
            refs: Vec::new(),
        };
        let mut kept = Vec::new();
        for p in &paths {
            let rel = p
                .strip_prefix(src)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            // main.rs is another crate (the binary): it reaches the library as `wavelift::`.
            if rel == "main.rs" {
                continue;
            }
            kept.push(p);
            let m = module_of(&rel);
            let id = k.files.len();
            k.files.push(rel);
            k.file_mods.push(m.clone());
            k.modules.entry(m.clone()).or_default().file = id;
            if let Some((name, parent)) = m.split_last() {
                k.modules
                    .entry(parent.to_vec())
                    .or_default()
                    .children
                    .insert(name.clone());
            }
        }
        for (id, p) in kept.into_iter().enumerate() {
            let text = std::fs::read_to_string(p).expect("read source");
            k.parse(id, &lex(&text));
        }
        k
    }

    /// Items, `use` trees, inline modules and paths of one file.
    fn parse(&mut self, file: usize, toks: &[Token]) {
        // Inline modules open at a brace depth: (module path, depth inside its braces).
        let mut scopes: Vec<(Vec<String>, usize)> = vec![(self.file_mods[file].clone(), 0)];
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let (scope, body) = scopes.last().cloned().expect("a scope");
            let t = &toks[i];
            match &t.tok {
                Tok::Open(_) => {
                    depth += 1;
                    i += 1;
                }
                Tok::Close(_) => {
                    if depth == body && scopes.len() > 1 {
                        scopes.pop();
                    }
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                Tok::Ident(w)
                    if w == "pub"
                        && matches!(toks.get(i + 1).map(|t| &t.tok), Some(Tok::Open('('))) =>
                {
                    // pub(crate), pub(super), pub(in crate::x): visibility, not a reference.
                    let mut d = 0;
                    i += 1;
                    while i < toks.len() {
                        match toks[i].tok {
                            Tok::Open(_) => d += 1,
                            Tok::Close(_) => d -= 1,
                            _ => {}
                        }
                        i += 1;
                        if d == 0 {
                            break;
                        }
                    }
                }
                Tok::Ident(w) if w == "mod" => {
                    let name = ident(toks.get(i + 1)).map(str::to_string);
                    match (name, toks.get(i + 2).map(|t| &t.tok)) {
                        (Some(name), Some(Tok::Open('{'))) => {
                            let mut m = scope.clone();
                            m.push(name.clone());
                            self.modules
                                .entry(scope.clone())
                                .or_default()
                                .children
                                .insert(name);
                            self.modules.entry(m.clone()).or_default().file = file;
                            depth += 1;
                            scopes.push((m, depth));
                            i += 3;
                        }
                        _ => i += 2,
                    }
                }
                Tok::Ident(w) if w == "use" => {
                    i += 1;
                    let mut leaves = Vec::new();
                    i = use_tree(toks, i, Vec::new(), &mut leaves);
                    let module = self.modules.entry(scope.clone()).or_default();
                    for (segs, alias, line) in leaves {
                        let raw = Raw {
                            scope: scope.clone(),
                            segs: segs.clone(),
                        };
                        match alias {
                            Leaf::Glob => module.globs.push(raw.clone()),
                            Leaf::Name(a) => {
                                module.aliases.insert(a, raw.clone());
                            }
                            Leaf::Anonymous => {}
                        }
                        self.refs.push(Ref { file, line, raw });
                    }
                }
                Tok::Ident(w) if ITEM_KEYWORDS.contains(&w.as_str()) || w == "macro_rules" => {
                    // `const fn f`, `static mut X`, `macro_rules! m`: the name is the next
                    // identifier that is not a keyword.
                    let mut j = i + 1;
                    loop {
                        match toks.get(j).map(|t| &t.tok) {
                            Some(Tok::Ident(n)) if KEYWORDS.contains(&n.as_str()) => j += 1,
                            Some(Tok::Punct('!')) => j += 1,
                            _ => break,
                        }
                    }
                    if depth == body {
                        if let Some(n) = ident(toks.get(j)) {
                            if n != "_" {
                                self.modules
                                    .entry(scope.clone())
                                    .or_default()
                                    .items
                                    .insert(n.to_string());
                            }
                        }
                    }
                    i += 1;
                }
                Tok::Ident(first) => {
                    // A path starts at an identifier not preceded by `::` (after a generic
                    // argument list, `::<T>::new`) or `.` (a method). `$crate` starts one.
                    if i > 0 && matches!(toks[i - 1].tok, Tok::Path | Tok::Punct('.')) {
                        i += 1;
                        continue;
                    }
                    let mut segs = vec![first.clone()];
                    let mut j = i + 1;
                    while is(toks.get(j), &Tok::Path) {
                        match ident(toks.get(j + 1)) {
                            Some(s) => {
                                segs.push(s.to_string());
                                j += 2;
                            }
                            None => break, // `::<T>` or `::{`
                        }
                    }
                    // Only paths into the crate resolve (see `absolute`); others are dropped.
                    if segs.len() > 1 {
                        self.refs.push(Ref {
                            file,
                            line: t.line,
                            raw: Raw {
                                scope: scope.clone(),
                                segs,
                            },
                        });
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
        assert_eq!(
            depth, 0,
            "unbalanced brackets in src/{}: the lexer misread it",
            self.files[file]
        );
    }

    /// `raw` as an absolute module path, if it points into the crate.
    fn absolute(&self, raw: &Raw, hops: usize) -> Option<Vec<String>> {
        if hops > 16 {
            return None;
        }
        let segs = &raw.segs;
        let first = segs.first()?;
        match first.as_str() {
            "crate" => Some(segs[1..].to_vec()),
            "self" | "super" => {
                let mut base = raw.scope.clone();
                let mut k = 0;
                if segs[0] == "self" {
                    k = 1;
                }
                while segs.get(k).is_some_and(|s| s == "super") {
                    base.pop()?;
                    k += 1;
                }
                base.extend(segs[k..].iter().cloned());
                Some(base)
            }
            name => {
                let module = self.modules.get(&raw.scope)?;
                if module.children.contains(name) {
                    let mut p = raw.scope.clone();
                    p.extend(segs.iter().cloned());
                    Some(p)
                } else if let Some(alias) = module.aliases.get(name) {
                    // An alias of itself (`use foo;` of an external crate) points nowhere.
                    if alias.segs.len() == 1 && alias.segs[0] == name && alias.scope == raw.scope {
                        return None;
                    }
                    let mut p = self.absolute(alias, hops + 1)?;
                    p.extend(segs[1..].iter().cloned());
                    Some(p)
                } else {
                    None
                }
            }
        }
    }

    /// The file that defines what absolute path `p` names: `Ok` when it was found, `Err`
    /// with the file of the deepest module reached when it was not.
    fn resolve(&self, p: &[String], hops: usize) -> Result<usize, usize> {
        let mut cur: Vec<String> = Vec::new();
        for (k, seg) in p.iter().enumerate() {
            let module = &self.modules[&cur];
            if hops > 16 {
                return Err(module.file);
            }
            if module.children.contains(seg) {
                cur.push(seg.clone());
                continue;
            }
            if module.items.contains(seg) {
                return Ok(module.file);
            }
            if let Some(alias) = module.aliases.get(seg) {
                // A name imported by `use`: where the import points, also when the item is
                // not found there (made by a macro or a derive): that module's file is the
                // best answer.
                if let Some(mut target) = self.absolute(alias, hops + 1) {
                    target.extend(p[k + 1..].iter().cloned());
                    return self.resolve(&target, hops + 1);
                }
            }
            for g in &module.globs {
                if let Some(mut target) = self.absolute(g, hops + 1) {
                    target.extend(p[k..].iter().cloned());
                    if let Ok(f) = self.resolve(&target, hops + 1) {
                        return Ok(f);
                    }
                }
            }
            return Err(module.file);
        }
        Ok(self.modules[&cur].file)
    }

    /// Every reference as a file → file edge (with the reference that makes it).
    fn file_edges(&self) -> Vec<(usize, usize, &Ref)> {
        let mut out = Vec::new();
        for r in &self.refs {
            let Some(abs) = self.absolute(&r.raw, 0) else {
                continue;
            };
            let to = match self.resolve(&abs, 0) {
                Ok(f) | Err(f) => f,
            };
            if to != r.file {
                out.push((r.file, to, r));
            }
        }
        out
    }
}

/// How a `use` leaf is bound.
enum Leaf {
    Name(String),
    Glob,
    /// `use x as _;`
    Anonymous,
}

/// Parses a use tree from `i` (after `use`), appending its leaves with `prefix`; returns the
/// index after the tree.
fn use_tree(
    toks: &[Token],
    mut i: usize,
    prefix: Vec<String>,
    leaves: &mut Vec<(Vec<String>, Leaf, usize)>,
) -> usize {
    let mut segs = prefix;
    if is(toks.get(i), &Tok::Path) {
        i += 1; // `use ::std::…`: an external crate
        segs.push("::".into());
    }
    loop {
        let Some(t) = toks.get(i) else { return i };
        match &t.tok {
            Tok::Ident(s) if s == "as" => {
                let alias = ident(toks.get(i + 1)).unwrap_or("_").to_string();
                let leaf = if alias == "_" {
                    Leaf::Anonymous
                } else {
                    Leaf::Name(alias)
                };
                leaves.push((segs.clone(), leaf, t.line));
                return i + 2;
            }
            Tok::Ident(s) => {
                segs.push(s.clone());
                i += 1;
                if is(toks.get(i), &Tok::Path) {
                    i += 1;
                    continue;
                }
                // `self` in a group names the group's prefix.
                let name = if s == "self" && segs.len() > 1 {
                    segs.pop();
                    segs.last().cloned().expect("prefix")
                } else {
                    s.clone()
                };
                if is(toks.get(i), &Tok::Ident("as".into())) {
                    continue;
                }
                leaves.push((segs.clone(), Leaf::Name(name), t.line));
                return i;
            }
            Tok::Punct('*') => {
                leaves.push((segs.clone(), Leaf::Glob, t.line));
                return i + 1;
            }
            Tok::Open('{') => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.tok) {
                        None => return i,
                        Some(Tok::Close('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        _ => i = use_tree(toks, i, segs.clone(), leaves),
                    }
                }
            }
            _ => return i,
        }
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `lib.rs` → [], `a.rs` → [a], `a/mod.rs` → [a], `a/b.rs` → [a, b].
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

// ------------------------------------------------------------------------------- graph

/// A dependency graph: edge → the references behind it (`file:line: path → target`).
type Graph = BTreeMap<(String, String), Vec<String>>;

/// The graphs the tests check, by name: `src/` (the module level: top-level modules) and,
/// for each top-level module `m`, `src/m/` (its files). See the module documentation.
fn graphs(k: &Crate) -> BTreeMap<String, Graph> {
    let mut out: BTreeMap<String, Graph> = BTreeMap::new();
    for (from, to, r) in k.file_edges() {
        let (a, b) = (&k.file_mods[from], &k.file_mods[to]);
        let witness = format!(
            "src/{}:{}: {} → src/{}",
            k.files[from],
            r.line,
            r.raw.segs.join("::"),
            k.files[to]
        );
        let (Some(ta), Some(tb)) = (a.first(), b.first()) else {
            continue; // lib.rs declares the top-level modules: parent/child
        };
        let (graph, edge) = if ta != tb {
            ("src/".to_string(), (ta.clone(), tb.clone()))
        } else if a.starts_with(b) || b.starts_with(a) {
            continue; // a folder's own file and a file below it: parent/child
        } else {
            (
                format!("src/{ta}/"),
                (k.files[from].clone(), k.files[to].clone()),
            )
        };
        out.entry(graph)
            .or_default()
            .entry(edge)
            .or_default()
            .push(witness);
    }
    out
}

/// The strongly connected components of more than one node (Tarjan), each sorted.
fn components(edges: &Graph) -> Vec<Vec<String>> {
    struct St<'a> {
        adj: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.adj[v].clone() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let l = s.low[w].min(s.low[v]);
                s.low.insert(v, l);
            } else if s.on.contains(w) {
                let l = s.index[w].min(s.low[v]);
                s.low.insert(v, l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                s.out.push(c);
            }
        }
    }
    let mut s = St {
        adj: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for (a, b) in edges.keys() {
        s.adj.entry(a.as_str()).or_default().push(b.as_str());
        s.adj.entry(b.as_str()).or_default();
    }
    let nodes: Vec<&str> = s.adj.keys().copied().collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Every cycle of every graph, named with its nodes and every edge between them (with the
/// first reference behind it); empty when there is none.
fn report(graphs: &BTreeMap<String, Graph>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, edges) in graphs {
        for c in components(edges) {
            let mut text = format!("cycle in {name}: {}", c.join(" ↔ "));
            for ((a, b), w) in edges {
                if c.contains(a) && c.contains(b) {
                    text.push_str(&format!("\n    {a} → {b}: {}", w[0]));
                    if w.len() > 1 {
                        text.push_str(&format!(" (+{} more)", w.len() - 1));
                    }
                }
            }
            out.push(text);
        }
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_dependency_cycles_between_top_level_modules() {
    let mut g = graphs(&Crate::load(&src()));
    let top = g.remove("src/").unwrap_or_default();
    let problems = report(&BTreeMap::from([("src/".to_string(), top.clone())]));
    assert!(
        problems.is_empty(),
        "dependency cycles between top-level modules (rules: tests/arch.rs):\n{}",
        problems.join("\n")
    );
    // The parser sees the crate's real edges.
    for (a, b) in [("cli", "plan"), ("engine", "cluster"), ("checks", "plan")] {
        assert!(
            top.contains_key(&(a.to_string(), b.to_string())),
            "edge {a} → {b} not found; edges: {:?}",
            top.keys().collect::<Vec<_>>()
        );
    }
}

/// No two files of one module import each other, directly or round a loop.
#[test]
fn no_dependency_cycles_between_files_of_a_module() {
    let mut g = graphs(&Crate::load(&src()));
    g.remove("src/");
    let problems = report(&g);
    assert!(
        problems.is_empty(),
        "dependency cycles between files (rules: tests/arch.rs):\n{}",
        problems.join("\n")
    );
}

// ------------------------------------------------------------------- the parser itself

/// A crate from `(file, text)` pairs, as `Crate::load` builds one from `src/`.
fn crate_of(files: &[(&str, &str)]) -> Crate {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    Crate::load(dir.path())
}

fn edges_of(k: &Crate, graph: &str) -> BTreeSet<(String, String)> {
    graphs(k)
        .get(graph)
        .map(|e| e.keys().cloned().collect())
        .unwrap_or_default()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn parser_sees_groups_super_self_fn_bodies_and_reexports() {
    let k = crate_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n"),
        (
            "a/mod.rs",
            "//! `use crate::d;` in a comment is no edge\npub mod x;\npub mod y;\npub mod z;\npub use y::Thing;\n",
        ),
        // A group with a nested group and `self`; `super::super::`.
        (
            "a/x.rs",
            "use crate::{b::inner::{self, Deep}, c};\nuse super::super::c::f;\n",
        ),
        // A path inside a fn body, a `use` inside a block, and one in a string (no edge).
        (
            "a/y.rs",
            "pub struct Thing;\nfn g() { let s = \"crate::d::h\"; crate::d::h(); { use super::z::Z; } }\n",
        ),
        // `self::` into an inline module; `super::Thing` is y's (re-exported by mod.rs).
        (
            "a/z.rs",
            "pub struct Z;\nuse self::inner::I;\nmod inner { pub struct I; }\nfn k() { let _ = super::Thing; }\n",
        ),
        ("b/mod.rs", "pub mod inner;\n"),
        ("b/inner.rs", "pub struct Deep;\n"),
        // A unit test's `use super::*` is its own file; its `crate::a::Thing` counts.
        (
            "c.rs",
            "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a::Thing;\n}\n",
        ),
        (
            "d.rs",
            "pub fn h<'a>(x: &'a str) { let c = ['\"', '\\'', '{', b'}', '\\u{7b}']; let r = r#\"crate::b\"#; /* crate::c /* nested */ crate::c */ }\n",
        ),
    ]);
    assert_eq!(
        edges_of(&k, "src/"),
        BTreeSet::from([
            pair("a", "b"),
            pair("a", "c"),
            pair("a", "d"),
            pair("c", "a")
        ]),
    );
    assert_eq!(
        edges_of(&k, "src/a/"),
        BTreeSet::from([pair("a/y.rs", "a/z.rs"), pair("a/z.rs", "a/y.rs")])
    );
    let problems = report(&graphs(&k));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("cycle in src/: a ↔ c"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("c → a: src/c.rs:5: crate::a::Thing → src/a/y.rs"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with("cycle in src/a/: a/y.rs ↔ a/z.rs"),
        "{}",
        problems[1]
    );
}

#[test]
fn parser_follows_module_aliases_and_globs() {
    let k = crate_of(&[
        ("lib.rs", "pub mod t;\n"),
        (
            "t/mod.rs",
            "pub mod app;\npub mod view;\npub mod keys;\npub use keys::*;\n",
        ),
        ("t/view/mod.rs", "pub mod layout;\n"),
        ("t/view/layout.rs", "pub fn rows() {}\n"),
        // `layout::rows` through the alias; `Key` through the parent's glob re-export.
        (
            "t/app.rs",
            "use super::view::layout;\nfn f() { layout::rows(); let _ = super::Key; }\n",
        ),
        ("t/keys.rs", "pub struct Key;\n"),
    ]);
    assert_eq!(
        edges_of(&k, "src/t/"),
        BTreeSet::from([
            pair("t/app.rs", "t/keys.rs"),
            pair("t/app.rs", "t/view/layout.rs")
        ])
    );
    // A folder's own file and the files below it are parent and child, not a cycle.
    let k = crate_of(&[
        ("lib.rs", "pub mod m;\n"),
        (
            "m/mod.rs",
            "pub mod p;\npub mod q;\npub use p::f;\npub struct S;\n",
        ),
        ("m/p.rs", "use super::S;\npub fn f() {}\n"),
        ("m/q.rs", "pub fn g() { super::p::f() }\n"),
    ]);
    assert_eq!(
        edges_of(&k, "src/m/"),
        BTreeSet::from([pair("m/q.rs", "m/p.rs")])
    );
    assert!(report(&graphs(&k)).is_empty());
}
