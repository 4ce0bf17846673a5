//! Prometheus: `prometheus.yml` (`scrape_configs[].static_configs[].targets`) and file_sd
//! target files (a JSON or YAML list of `{targets: [...], labels: {...}}`). Targets are
//! `host:port` or URLs (blackbox exporter). The owner is the `team` or `owner` label
//! (owner source `prometheus-label`).

use super::firewall::QuotedLines;
use super::matcher::Matcher;
use super::model::{Hit, Owner, OwnerSource, RefKind};
use serde_json::Value;

/// What a parsed YAML/JSON document is.
pub enum PromDoc {
    Config(Value),
    FileSd(Value),
}

/// Parses a YAML or JSON file and says whether it is a Prometheus config or a file_sd list.
pub fn sniff(text: &str, is_json: bool) -> Option<PromDoc> {
    let v: Value = if is_json {
        serde_json::from_str(text).ok()?
    } else {
        if !text.contains("targets") {
            return None;
        }
        serde_saphyr::from_str(text).ok()?
    };
    if v.get("scrape_configs").is_some() {
        return Some(PromDoc::Config(v));
    }
    let is_sd = v.as_array().is_some_and(|a| {
        !a.is_empty()
            && a.iter()
                .all(|e| e.get("targets").is_some_and(Value::is_array))
    });
    is_sd.then_some(PromDoc::FileSd(v))
}

fn label_owner(labels: Option<&Value>) -> Option<Owner> {
    let l = labels?.as_object()?;
    ["team", "owner"].iter().find_map(|k| {
        l.get(*k)
            .and_then(Value::as_str)
            .map(|o| Owner::new(o, OwnerSource::PrometheusLabel))
    })
}

fn group(g: &Value, job: &str, m: &Matcher, ql: &mut QuotedLines<'_>, out: &mut Vec<Hit>) {
    let owner = label_owner(g.get("labels"));
    for t in g
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(t) = t.as_str() else { continue };
        let (line, text) = ql.next(t);
        for (target, matched, coverage) in m.token(t) {
            out.push(Hit {
                target,
                matched,
                line,
                kind: RefKind::PrometheusTarget,
                text: text.clone(),
                context: Some(format!("job {job}")),
                coverage,
                owner: owner.clone(),
            });
        }
    }
}

pub fn hits(doc: &PromDoc, text: &str, m: &Matcher) -> Vec<Hit> {
    let mut out = Vec::new();
    let mut ql = QuotedLines::new(text);
    match doc {
        PromDoc::Config(v) => {
            for sc in v
                .get("scrape_configs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let job = sc.get("job_name").and_then(Value::as_str).unwrap_or("-");
                for g in sc
                    .get("static_configs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    group(g, job, m, &mut ql, &mut out);
                }
            }
        }
        PromDoc::FileSd(v) => {
            for g in v.as_array().into_iter().flatten() {
                let job = g
                    .get("labels")
                    .and_then(|l| l.get("job"))
                    .and_then(Value::as_str)
                    .unwrap_or("file_sd");
                group(g, job, m, &mut ql, &mut out);
            }
        }
    }
    out
}
