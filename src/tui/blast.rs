//! Blast-radius references for the detail pane: the minimal slice of a `wavelift blast
//! --format json` report the TUI shows (per VM: file, line, kind, owner).
//!
//! The report is read tolerantly through `serde_json::Value`, so the TUI does not break
//! when the blast report grows fields: a top-level `vms` array (or a bare array) of
//! objects with `vm` and `references: [{file, line, kind, owner: {name} | "name"}]`.

use std::collections::HashMap;

/// One place that names a VM's address or host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlastRef {
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub owner: Option<String>,
}

/// References per VM name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlastData {
    pub by_vm: HashMap<String, Vec<BlastRef>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlastLoadError {
    #[error("blast report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("blast report: {0}")]
    Io(#[from] std::io::Error),
    #[error("blast report: expected an object with a `vms` array, or an array of VMs")]
    Shape,
}

impl BlastData {
    /// Parses a blast report (JSON).
    pub fn from_json_str(text: &str) -> Result<BlastData, BlastLoadError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let vms = match &value {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(o) => match o.get("vms") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err(BlastLoadError::Shape),
            },
            _ => return Err(BlastLoadError::Shape),
        };
        let mut by_vm: HashMap<String, Vec<BlastRef>> = HashMap::new();
        for vm in vms {
            let Some(name) = vm.get("vm").and_then(|v| v.as_str()) else {
                continue;
            };
            let refs = by_vm.entry(name.to_string()).or_default();
            let Some(list) = vm.get("references").and_then(|r| r.as_array()) else {
                continue;
            };
            for r in list {
                let text = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("");
                let owner = match r.get("owner") {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Object(o)) => {
                        o.get("name").and_then(|n| n.as_str()).map(str::to_string)
                    }
                    _ => None,
                };
                refs.push(BlastRef {
                    file: text("file").to_string(),
                    line: r.get("line").and_then(|l| l.as_u64()).unwrap_or(0) as usize,
                    kind: text("kind").to_string(),
                    owner,
                });
            }
        }
        Ok(BlastData { by_vm })
    }

    /// The references of one VM (empty when the report does not name it).
    pub fn refs(&self, vm: &str) -> &[BlastRef] {
        self.by_vm.get(vm).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vms_and_references() {
        let json = r#"{"vms":[{"vm":"db","references":[
            {"file":"fw/rules.csv","line":12,"kind":"firewall","owner":{"name":"netsec","source":"rule-tag"}},
            {"file":"dns/zone","line":3,"kind":"dns-a","owner":null}]}]}"#;
        let b = BlastData::from_json_str(json).expect("parse");
        assert_eq!(b.refs("db").len(), 2);
        assert_eq!(b.refs("db")[0].owner.as_deref(), Some("netsec"));
        assert_eq!(b.refs("db")[1].line, 3);
        assert!(b.refs("other").is_empty());
        assert!(BlastData::from_json_str("42").is_err());
    }
}
