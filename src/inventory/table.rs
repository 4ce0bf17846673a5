//! A sheet read from an RVTools export, whatever the container (xlsx sheet or per-tab CSV):
//! a header row and data rows, each row remembering where it came from (`file:line` for CSV,
//! `file:sheet:row` for xlsx) so a malformed row can be reported precisely.

use std::path::Path;

/// One tab of an export.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The tab name (`vInfo`, `vNetwork`, …).
    pub tab: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone)]
pub struct Row {
    /// `file:line` (CSV) or `file:sheet:row` (xlsx), 1-based.
    pub location: String,
    pub cells: Vec<String>,
}

/// Normalises a header for matching: lowercase ASCII letters and digits only, `mb` read as
/// `mib` (older RVTools versions), and the `-DBColumnNames` tab prefix (`vInfoVMName`) dropped.
pub fn norm_header(tab: &str, header: &str) -> String {
    let mut h: String = header
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let prefix: String = tab
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !prefix.is_empty() && h.len() > prefix.len() && h.starts_with(&prefix) {
        h = h[prefix.len()..].to_string();
    }
    if let Some(stem) = h.strip_suffix("mb") {
        h = format!("{stem}mib");
    }
    h
}

impl Table {
    /// Column index of the first header whose normalised form is one of `names`.
    pub fn col(&self, names: &[&str]) -> Option<usize> {
        let normed: Vec<String> = self
            .headers
            .iter()
            .map(|h| norm_header(&self.tab, h))
            .collect();
        names
            .iter()
            .find_map(|n| normed.iter().position(|h| h == n))
    }
}

impl Row {
    /// The trimmed cell at `col`, `None` when absent or empty.
    pub fn get(&self, col: Option<usize>) -> Option<&str> {
        let c = self.cells.get(col?)?.trim();
        (!c.is_empty()).then_some(c)
    }
}

/// Reads a per-tab CSV export: sniffs `,` or `;`, strips a UTF-8 BOM. Rows the CSV reader
/// rejects are reported in `warnings` with `file:line` and skipped.
pub fn read_csv(path: &Path, tab: &str, warnings: &mut Vec<String>) -> std::io::Result<Table> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or("");
    let delim = if first.matches(';').count() > first.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let file = path.display().to_string();
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            warnings.push(format!("{file}:1: unreadable header row: {e}"));
            Vec::new()
        }
    };
    let mut rows = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                rows.push(Row {
                    location: format!("{file}:{line}"),
                    cells: r.iter().map(str::to_string).collect(),
                });
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                warnings.push(format!("{file}:{line}: unreadable row skipped: {e}"));
            }
        }
    }
    Ok(Table {
        tab: tab.to_string(),
        headers,
        rows,
    })
}

/// Reads the named sheets of an xlsx workbook (case-insensitive sheet names); missing sheets
/// are simply absent from the result.
pub fn read_xlsx(path: &Path, tabs: &[&str]) -> Result<Vec<Table>, calamine::Error> {
    use calamine::{open_workbook_auto, Data, Reader};
    let mut wb = open_workbook_auto(path)?;
    let file = path.display().to_string();
    let names = wb.sheet_names().to_vec();
    let mut out = Vec::new();
    for tab in tabs {
        let Some(name) = names.iter().find(|n| n.eq_ignore_ascii_case(tab)) else {
            continue;
        };
        let range = wb.worksheet_range(name)?;
        let (row0, _) = range.start().unwrap_or((0, 0));
        let mut it = range.rows().enumerate();
        let headers: Vec<String> = match it.next() {
            Some((_, r)) => r.iter().map(|c| cell_text(c).trim().to_string()).collect(),
            None => Vec::new(),
        };
        let rows = it
            .filter(|(_, r)| r.iter().any(|c| !matches!(c, Data::Empty)))
            .map(|(i, r)| Row {
                location: format!("{file}:{name}:{}", row0 as usize + i + 1),
                cells: r.iter().map(cell_text).collect(),
            })
            .collect();
        out.push(Table {
            tab: (*tab).to_string(),
            headers,
            rows,
        });
    }
    Ok(out)
}

fn cell_text(c: &calamine::Data) -> String {
    use calamine::Data;
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => d.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}
