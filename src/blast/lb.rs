//! Load balancers: HAProxy and nginx configurations.
//!
//! - HAProxy: in `backend`/`listen` sections, `server NAME ADDR[:PORT] …` (also
//!   `server-template`) → `lb-backend`; in `frontend`/`listen`, `bind ADDR:PORT` → `lb-frontend`
//!   (the VM holds a VIP).
//! - nginx: `server ADDR[:PORT] …;` inside `upstream {}` and `proxy_pass URL` → `lb-backend`;
//!   `listen ADDR:PORT` → `lb-frontend`; `allow`/`deny`/`set_real_ip_from` → `lb-acl`.
//!
//! Owners: a comment `# owner: NAME` on the line, or on its own line inside the section/block
//! (it applies to the rest of that section), or before the first section (the whole file).

use super::matcher::Matcher;
use super::model::{clip, owner_in_text, Hit, Owner, OwnerSource, RefKind};

pub fn looks_like_haproxy(name: &str, head: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.contains("haproxy") {
        return true;
    }
    n.ends_with(".cfg")
        && head.lines().any(|l| {
            let t = l.trim_start();
            l == t
                && (t.starts_with("backend ")
                    || t.starts_with("frontend ")
                    || t.starts_with("listen "))
        })
}

pub fn looks_like_nginx(name: &str, path: &str, head: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n == "nginx.conf" || path.contains("nginx") && n.ends_with(".conf") {
        return true;
    }
    // Block openers and `proxy_pass …;` statements, not just a word at the start of a line.
    // Either needs a `{` or `proxy_pass `: one SIMD search (memchr) rules most files out.
    n.ends_with(".conf")
        && (memchr::memchr(b'{', head.as_bytes()).is_some()
            || memchr::memmem::find(head.as_bytes(), b"proxy_pass ").is_some())
        && head.lines().any(|l| {
            let t = l.trim();
            let opens = t.ends_with('{')
                && [
                    "upstream ",
                    "server ",
                    "server{",
                    "location ",
                    "http ",
                    "http{",
                    "stream ",
                ]
                .iter()
                .any(|k| t.starts_with(k));
            opens || (t.starts_with("proxy_pass ") && t.ends_with(';'))
        })
}

fn split_comment(l: &str) -> (&str, Option<&str>) {
    match l.find('#') {
        Some(i) => (&l[..i], Some(&l[i + 1..])),
        None => (l, None),
    }
}

#[allow(clippy::too_many_arguments)]
fn push(
    m: &Matcher,
    tok: &str,
    line: usize,
    kind: RefKind,
    raw: &str,
    ctx: &str,
    owner: &Option<Owner>,
    out: &mut Vec<Hit>,
) {
    for (t, matched, coverage) in m.token(tok) {
        out.push(Hit {
            target: t,
            matched,
            line,
            kind,
            text: clip(raw),
            context: Some(ctx.to_string()),
            coverage,
            owner: owner.clone(),
        });
    }
}

pub fn haproxy(text: &str, m: &Matcher) -> Vec<Hit> {
    let mut out = Vec::new();
    let mut section = String::from("global");
    let mut file_owner: Option<Owner> = None;
    let mut sec_owner: Option<Owner> = None;
    let mut seen_section = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (body, comment) = split_comment(raw);
        let c_owner = comment
            .and_then(owner_in_text)
            .map(|o| Owner::new(o, OwnerSource::Comment));
        let w: Vec<&str> = body.split_whitespace().collect();
        let Some(first) = w.first() else {
            if let Some(o) = c_owner {
                if seen_section {
                    sec_owner = Some(o);
                } else {
                    file_owner = Some(o);
                }
            }
            continue;
        };
        if matches!(
            *first,
            "global"
                | "defaults"
                | "frontend"
                | "backend"
                | "listen"
                | "resolvers"
                | "peers"
                | "userlist"
                | "cache"
                | "program"
                | "http-errors"
                | "ring"
                | "mailers"
        ) {
            section = w.join(" ");
            seen_section = true;
            sec_owner = c_owner;
            continue;
        }
        let owner = c_owner
            .or_else(|| sec_owner.clone())
            .or_else(|| file_owner.clone());
        match *first {
            "server" if w.len() >= 3 => push(
                m,
                w[2],
                n,
                RefKind::LbBackend,
                raw,
                &section,
                &owner,
                &mut out,
            ),
            "server-template" if w.len() >= 4 => push(
                m,
                w[3],
                n,
                RefKind::LbBackend,
                raw,
                &section,
                &owner,
                &mut out,
            ),
            "bind" if w.len() >= 2 => {
                for a in w[1].split(',') {
                    push(
                        m,
                        a,
                        n,
                        RefKind::LbFrontend,
                        raw,
                        &section,
                        &owner,
                        &mut out,
                    );
                }
            }
            _ => {}
        }
    }
    out
}

pub fn nginx(text: &str, m: &Matcher) -> Vec<Hit> {
    let mut out = Vec::new();
    // (block name, owner) per open brace
    let mut stack: Vec<(String, Option<Owner>)> = Vec::new();
    let mut file_owner: Option<Owner> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (body, comment) = split_comment(raw);
        let c_owner = comment
            .and_then(owner_in_text)
            .map(|o| Owner::new(o, OwnerSource::Comment));
        let t = body.trim();
        if t.is_empty() {
            if let Some(o) = c_owner {
                match stack.last_mut() {
                    Some(top) => top.1 = Some(o),
                    None => file_owner = Some(o),
                }
            }
            continue;
        }
        let ctx = stack
            .iter()
            .map(|(b, _)| b.as_str())
            .collect::<Vec<_>>()
            .join(" > ");
        let owner = c_owner
            .clone()
            .or_else(|| stack.iter().rev().find_map(|(_, o)| o.clone()))
            .or_else(|| file_owner.clone());
        let in_upstream = stack.last().is_some_and(|(b, _)| b.starts_with("upstream"));
        for stmt in t.split(';') {
            let s = stmt.trim();
            let head = s.split('{').next().unwrap_or("").trim();
            let w: Vec<&str> = head.split_whitespace().collect();
            match (w.first().copied(), w.get(1).copied()) {
                (Some("server"), Some(a)) if in_upstream => {
                    push(m, a, n, RefKind::LbBackend, raw, &ctx, &owner, &mut out)
                }
                (Some("proxy_pass" | "fastcgi_pass" | "grpc_pass" | "uwsgi_pass"), Some(a)) => {
                    push(m, a, n, RefKind::LbBackend, raw, &ctx, &owner, &mut out)
                }
                (Some("listen"), Some(a)) => {
                    push(m, a, n, RefKind::LbFrontend, raw, &ctx, &owner, &mut out)
                }
                (Some("allow" | "deny" | "set_real_ip_from"), Some(a)) => {
                    push(m, a, n, RefKind::LbAcl, raw, &ctx, &owner, &mut out)
                }
                _ => {}
            }
        }
        // Braces: open blocks named by the text before `{`, close on `}`.
        let mut rest = t;
        while let Some(p) = rest.find(['{', '}']) {
            if rest.as_bytes()[p] == b'{' {
                let name = rest[..p]
                    .rsplit(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                stack.push((name, c_owner.clone()));
            } else {
                stack.pop();
            }
            rest = &rest[p + 1..];
        }
    }
    out
}
