//! Chains with jumps (iptables, nftables) flattened into one first-match list per base chain.
//!
//! A jump to a user chain is inlined where it stands: each rule of the called chain becomes a
//! rule matching both the jump's conditions and its own (addresses and services
//! intersected), so ACCEPT/DROP inside the called chain decide exactly as they do in the
//! kernel. An unconditional RETURN ends the inlined chain; a conditional RETURN (or a
//! `goto` inside a called chain) cannot be expressed in a first-match list, so the rules
//! after it in that chain keep their conditions and get `not matching the RETURN at
//! file:line` in `narrowed_by` (they match less than the model says) and a warning. A RETURN
//! in a base chain is the chain policy; a `goto` from a base chain ends with the policy.

use super::common::{intersect, intersect_services, is_nothing, origin};
use crate::policy::rules::{Action, AddrSet, Direction, Rule, Services};
use std::collections::{HashMap, HashSet};

/// Most rules one flattened list may hold (a jump-heavy export multiplies rules).
const BUDGET: usize = 100_000;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matches {
    pub src: AddrSet,
    pub dst: AddrSet,
    pub services: Services,
    pub narrowed: Vec<String>,
}

impl Matches {
    pub fn all() -> Self {
        Matches {
            src: AddrSet::Any,
            dst: AddrSet::Any,
            services: Services::Any,
            narrowed: vec![],
        }
    }
    pub fn is_all(&self) -> bool {
        *self == Matches::all()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Verdict(Action),
    Return,
    Jump(String),
    Goto(String),
}

#[derive(Debug, Clone)]
pub struct PRule {
    pub line: usize,
    pub m: Matches,
    pub target: Target,
    pub name: Option<String>,
    pub owner: Option<String>,
}

pub struct Flattener<'a> {
    pub file: &'a str,
    pub chains: &'a HashMap<String, Vec<PRule>>,
    pub policy: Action,
    pub direction: Option<Direction>,
    pub warnings: &'a mut Vec<String>,
    pub out: Vec<Rule>,
    warned: HashSet<(usize, &'static str)>,
    stopped: bool,
}

impl<'a> Flattener<'a> {
    pub fn new(
        file: &'a str,
        chains: &'a HashMap<String, Vec<PRule>>,
        policy: Action,
        direction: Option<Direction>,
        warnings: &'a mut Vec<String>,
    ) -> Self {
        Flattener {
            file,
            chains,
            policy,
            direction,
            warnings,
            out: Vec::new(),
            warned: HashSet::new(),
            stopped: false,
        }
    }

    fn warn_once(&mut self, line: usize, key: &'static str, msg: String) {
        if self.warned.insert((line, key)) {
            self.warnings.push(format!("{}:{line}: {msg}", self.file));
        }
    }

    fn push(
        &mut self,
        line: usize,
        m: Matches,
        action: Action,
        name: Option<String>,
        owner: Option<String>,
    ) {
        if self.out.len() >= BUDGET {
            if !self.stopped {
                self.stopped = true;
                self.warnings.push(format!(
                    "{}:{line}: more than {BUDGET} rules after inlining jumps; the rest of this chain is not modelled",
                    self.file
                ));
            }
            return;
        }
        self.out.push(Rule {
            origin: origin(self.file, line, name, owner),
            action,
            direction: self.direction,
            src: m.src,
            dst: m.dst,
            services: m.services,
            narrowed_by: m.narrowed,
            disabled: false,
        });
    }

    /// Flattens `chain` under `guard`; `depth` 0 is the base chain.
    pub fn run(
        &mut self,
        chain: &str,
        guard: &Matches,
        inherited: (&Option<String>, &Option<String>),
        stack: &mut Vec<String>,
    ) {
        let Some(rules) = self.chains.get(chain) else {
            return;
        };
        let top = stack.is_empty();
        stack.push(chain.to_string());
        let mut pending: Vec<String> = Vec::new();
        for r in rules {
            if self.stopped {
                break;
            }
            let Some(mut m) = combine(guard, &r.m) else {
                continue;
            };
            if !pending.is_empty() {
                let mut n = guard.narrowed.clone();
                n.extend(pending.iter().cloned());
                n.extend(r.m.narrowed.iter().cloned());
                m.narrowed = n;
            }
            let name = r.name.clone().or_else(|| inherited.0.clone());
            let owner = r.owner.clone().or_else(|| inherited.1.clone());
            match &r.target {
                Target::Verdict(a) => self.push(r.line, m, *a, name, owner),
                Target::Return if top => self.push(r.line, m, self.policy, name, owner),
                Target::Return => {
                    if r.m.is_all() {
                        break;
                    }
                    self.warn_once(
                        r.line,
                        "return",
                        "conditional RETURN: the rules after it in this chain are kept, narrowed by `not matching` it".into(),
                    );
                    pending.push(format!(
                        "not matching the RETURN at {}:{}",
                        self.file, r.line
                    ));
                }
                Target::Jump(c) | Target::Goto(c) => {
                    let goto = matches!(r.target, Target::Goto(_));
                    if !self.chains.contains_key(c) {
                        self.warn_once(
                            r.line,
                            "undef",
                            format!("jump to chain `{c}`, which the export does not define; rule skipped"),
                        );
                        continue;
                    }
                    if stack.iter().any(|s| s == c) || stack.len() >= MAX_DEPTH {
                        self.warn_once(
                            r.line,
                            "loop",
                            format!("jump to chain `{c}` loops (or nests too deep); rule skipped"),
                        );
                        continue;
                    }
                    self.run(c, &m, (&name, &owner), stack);
                    if goto {
                        if top {
                            self.push(r.line, m, self.policy, name, owner);
                        } else if r.m.is_all() {
                            break;
                        } else {
                            self.warn_once(
                                r.line,
                                "goto",
                                "conditional goto inside a called chain: the rules after it in this chain are kept, narrowed by `not matching` it".into(),
                            );
                            pending
                                .push(format!("not matching the goto at {}:{}", self.file, r.line));
                        }
                    }
                }
            }
        }
        stack.pop();
    }
}

/// A rule's conditions under a jump's; `None` when no packet can match both.
fn combine(guard: &Matches, m: &Matches) -> Option<Matches> {
    if guard.is_all() {
        return Some(m.clone());
    }
    let src = intersect(&guard.src, &m.src);
    let dst = intersect(&guard.dst, &m.dst);
    let services = intersect_services(&guard.services, &m.services);
    let emptied =
        |a: &AddrSet, b: &AddrSet, r: &AddrSet| is_nothing(r) && !is_nothing(a) && !is_nothing(b);
    if emptied(&guard.src, &m.src, &src)
        || emptied(&guard.dst, &m.dst, &dst)
        || matches!(&services, Services::List(l) if l.is_empty())
    {
        return None;
    }
    let mut narrowed = guard.narrowed.clone();
    for n in &m.narrowed {
        if !narrowed.contains(n) {
            narrowed.push(n.clone());
        }
    }
    Some(Matches {
        src,
        dst,
        services,
        narrowed,
    })
}
