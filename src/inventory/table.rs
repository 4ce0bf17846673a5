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

/// Reads a per-tab CSV export (at most [`crate::fsio::INVENTORY_CSV_MAX`] bytes): sniffs `,`
/// or `;`, strips a UTF-8 BOM. Rows the CSV reader
/// rejects are reported in `warnings` with `file:line` and skipped.
pub fn read_csv(path: &Path, tab: &str, warnings: &mut Vec<String>) -> std::io::Result<Table> {
    let bytes = crate::fsio::read_bounded(path, crate::fsio::INVENTORY_CSV_MAX, "the CSV file")
        .map_err(crate::fsio::InputError::into_io)?;
    Ok(parse_csv(
        &bytes,
        &path.display().to_string(),
        tab,
        warnings,
    ))
}

/// [`read_csv`] once the file is read: `file` names it in warnings.
pub fn parse_csv(bytes: &[u8], file: &str, tab: &str, warnings: &mut Vec<String>) -> Table {
    let text = String::from_utf8_lossy(bytes);
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
    Table {
        tab: tab.to_string(),
        headers,
        rows,
    }
}

/// Limits on what an RVTools workbook may expand to. The zip container is checked before the
/// spreadsheet library sees it (entry count, central directory, every part's decompressed
/// size measured by decompressing it, the declared shared-string count), the sheets while
/// they are read (cell positions, the used area). Each refusal names the limit.
pub mod xlsx_limits {
    const MIB: u64 = 1 << 20;
    /// Entries in the zip container (an RVTools export has about twenty).
    pub const ENTRIES_MAX: usize = 10_000;
    /// The zip central directory.
    pub const DIRECTORY_MAX: u64 = 4 * MIB;
    /// One worksheet part (`xl/worksheets/*.xml`), decompressed; sheets are streamed.
    pub const SHEET_PART_MAX: u64 = 256 * MIB;
    /// The shared strings (`sharedStrings.xml`), decompressed; held in memory.
    pub const SHARED_STRINGS_MAX: u64 = 64 * MIB;
    /// The number of shared strings the workbook declares (`<sst uniqueCount>`).
    pub const UNIQUE_STRINGS_MAX: u64 = 4_000_000;
    /// Any other part (workbook, styles, relationships, theme, properties), decompressed.
    pub const OTHER_PART_MAX: u64 = 16 * MIB;
    /// All parts together, decompressed.
    pub const UNPACKED_MAX: u64 = 1 << 30;
    /// The highest column a sheet may use (column `AMJ`; vInfo has about a hundred).
    pub const COLUMNS_MAX: u32 = 1_024;
    /// Cells read from the workbook: the used area (rows × columns, empty cells included)
    /// of every tab read, together. About 40,000 VMs' worth of vInfo, vNetwork and vDisk.
    pub const CELLS_MAX: u64 = 8_000_000;
}

/// Reads the named sheets of an xlsx workbook (case-insensitive sheet names); missing sheets
/// are simply absent from the result. The file is read once (at most
/// [`crate::fsio::XLSX_MAX`] bytes) and checked against [`xlsx_limits`] before the
/// spreadsheet library parses it. Legacy `.xls` (and `.xlsb`, `.ods`) workbooks are refused.
pub fn read_xlsx(path: &Path, tabs: &[&str]) -> anyhow::Result<Vec<Table>> {
    let bytes = crate::fsio::read_bounded(path, crate::fsio::XLSX_MAX, "the workbook")?;
    parse_xlsx(bytes, &path.display().to_string(), tabs)
}

/// [`read_xlsx`] once the file is read: `file` names it in errors.
pub fn parse_xlsx(bytes: Vec<u8>, file: &str, tabs: &[&str]) -> anyhow::Result<Vec<Table>> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        anyhow::bail!(
            "{file}: a legacy .xls workbook: not read (its sheet sizes cannot be checked \
             before reading); save it as .xlsx or export the tabs as CSV"
        );
    }
    if !bytes.starts_with(b"PK") {
        anyhow::bail!("{file}: not an xlsx workbook (not a zip container)");
    }
    preflight_zip(&bytes).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    // The spreadsheet library does arithmetic on cell references that a hostile file can
    // overflow (a panic where overflow checks are on): a panic is a malformed workbook.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_sheets(bytes, file, tabs)
    }))
    .unwrap_or_else(|_| {
        anyhow::bail!("{file}: malformed workbook (the spreadsheet reader failed on it)")
    })
}

/// [`read_xlsx`] once the container passed [`preflight_zip`].
fn read_sheets(bytes: Vec<u8>, file: &str, tabs: &[&str]) -> anyhow::Result<Vec<Table>> {
    use calamine::{Data, Reader, Xlsx};
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("{file}: cannot read workbook: {e}"))?;
    let names = wb.sheet_names().to_vec();
    let mut out = Vec::new();
    let mut cells_left = xlsx_limits::CELLS_MAX;
    for tab in tabs {
        let Some(name) = names.iter().find(|n| n.eq_ignore_ascii_case(tab)) else {
            continue;
        };
        let mut reader = wb
            .worksheet_cells_reader(name)
            .map_err(|e| anyhow::anyhow!("{file}: sheet {name}: cannot read: {e}"))?;
        let dims = reader.dimensions();
        let too_big = |what: String| {
            anyhow::anyhow!(
                "{file}: sheet {name}: {what}; refused (limits: column {} and {} cells per \
                 workbook, wavelift::inventory::table::xlsx_limits)",
                col_name(xlsx_limits::COLUMNS_MAX - 1),
                xlsx_limits::CELLS_MAX
            )
        };
        if dims.end.1 >= xlsx_limits::COLUMNS_MAX
            || area(dims.start, dims.end) > u128::from(cells_left)
        {
            return Err(too_big(format!(
                "declares the area {}{}:{}{} ({} cells)",
                col_name(dims.start.1),
                dims.start.0 + 1,
                col_name(dims.end.1),
                dims.end.0 + 1,
                area(dims.start, dims.end)
            )));
        }
        // Non-empty cells, as they come; the used area is checked as it grows.
        let mut cells: Vec<(u32, u32, String)> = Vec::new();
        let (mut lo, mut hi) = ((u32::MAX, u32::MAX), (0u32, 0u32));
        loop {
            let cell = match reader.next_cell() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => anyhow::bail!("{file}: sheet {name}: {e}"),
            };
            let (r, c) = cell.get_position();
            let value: Data = cell.get_value().clone().into();
            if matches!(value, Data::Empty) {
                continue;
            }
            if c >= xlsx_limits::COLUMNS_MAX {
                return Err(too_big(format!("a cell at {}{}", col_name(c), r + 1)));
            }
            lo = (lo.0.min(r), lo.1.min(c));
            hi = (hi.0.max(r), hi.1.max(c));
            if area(lo, hi) > u128::from(cells_left) {
                return Err(too_big(format!(
                    "its cells span {}{}:{}{} ({} cells)",
                    col_name(lo.1),
                    lo.0 + 1,
                    col_name(hi.1),
                    hi.0 + 1,
                    area(lo, hi)
                )));
            }
            cells.push((r, c, cell_text(&value)));
        }
        drop(reader);
        if !cells.is_empty() {
            cells_left -= u64::try_from(area(lo, hi)).unwrap_or(u64::MAX);
        }
        cells.sort_by_key(|(r, c, _)| (*r, *c));
        let width = if cells.is_empty() {
            0
        } else {
            (hi.1 - lo.1 + 1) as usize
        };
        let mut rows: Vec<(u32, Vec<String>)> = Vec::new();
        for (r, c, v) in cells {
            if rows.last().is_none_or(|(row, _)| *row != r) {
                rows.push((r, vec![String::new(); width]));
            }
            if let Some((_, cells)) = rows.last_mut() {
                cells[(c - lo.1) as usize] = v;
            }
        }
        let mut it = rows.into_iter();
        // The header row is the first row with a value (as the library's own ranges do).
        let headers: Vec<String> = it
            .next()
            .map(|(_, r)| r.iter().map(|c| c.trim().to_string()).collect())
            .unwrap_or_default();
        let rows = it
            .map(|(r, cells)| Row {
                location: format!("{file}:{name}:{}", r as usize + 1),
                cells,
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

/// Cells of the area from `a` to `b` (inclusive corners, `(row, column)`).
fn area(a: (u32, u32), b: (u32, u32)) -> u128 {
    let rows = u128::from(b.0.saturating_sub(a.0)) + 1;
    let cols = u128::from(b.1.saturating_sub(a.1)) + 1;
    rows * cols
}

/// `0` → `A`, `27` → `AB`.
fn col_name(mut c: u32) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

/// Checks the zip container against [`xlsx_limits`] before the spreadsheet library opens it:
/// the end-of-central-directory record (entry count, directory size, no zip64), then every
/// part, decompressed into a counter (what the parts really expand to, whatever their
/// headers claim), and the shared-string count the workbook declares.
pub(crate) fn preflight_zip(bytes: &[u8]) -> Result<(), String> {
    use std::io::Read;
    use xlsx_limits as l;
    check_eocd(bytes)?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable xlsx (zip) workbook: {e}"))?;
    if zip.len() > l::ENTRIES_MAX {
        return Err(format!(
            "the workbook has {} parts, more than the limit of {}; refused",
            zip.len(),
            l::ENTRIES_MAX
        ));
    }
    let mut total: u64 = 0;
    let mut sink = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| format!("workbook part #{i}: {e}"))?;
        if f.is_dir() {
            continue;
        }
        let shown = f
            .name()
            .map_err(|e| format!("workbook part #{i}: {e}"))?
            .into_owned();
        let name = shown.replace('\\', "/").to_ascii_lowercase();
        let (limit, class) = if name.ends_with("sharedstrings.xml") {
            (l::SHARED_STRINGS_MAX, "shared strings")
        } else if name.starts_with("xl/worksheets/") && !name.contains("/_rels/") {
            (l::SHEET_PART_MAX, "worksheet")
        } else {
            (l::OTHER_PART_MAX, "part")
        };
        let mut head: Vec<u8> = Vec::new();
        let keep_head = if class == "shared strings" {
            64 * 1024
        } else if name == "_rels/.rels" {
            l::OTHER_PART_MAX as usize
        } else {
            0
        };
        let mut n: u64 = 0;
        let mut limited = (&mut f).take(limit + 1);
        loop {
            let k = limited
                .read(&mut sink)
                .map_err(|e| format!("workbook part {shown}: {e}"))?;
            if k == 0 {
                break;
            }
            if head.len() < keep_head {
                let take = k.min(keep_head - head.len());
                head.extend_from_slice(&sink[..take]);
            }
            n += k as u64;
        }
        if n > limit {
            return Err(format!(
                "workbook {class} {shown} expands to more than the {} limit; refused \
                 (wavelift::inventory::table::xlsx_limits)",
                crate::fsio::human(limit)
            ));
        }
        total += n;
        if total > l::UNPACKED_MAX {
            return Err(format!(
                "the workbook expands to more than the {} limit for all its parts together; \
                 refused (wavelift::inventory::table::xlsx_limits)",
                crate::fsio::human(l::UNPACKED_MAX)
            ));
        }
        if class == "shared strings" && n > 0 {
            check_sst(&head, &shown)?;
        }
        // The package relationships must not point the workbook into the worksheets
        // folder: parts there get the larger limit, and the workbook is held in memory.
        if name == "_rels/.rels"
            && String::from_utf8_lossy(&head)
                .to_ascii_lowercase()
                .contains("worksheets/")
        {
            return Err(format!(
                "{shown} points into xl/worksheets/: not the layout of an Excel workbook; refused"
            ));
        }
    }
    Ok(())
}

/// The end-of-central-directory record: at most [`xlsx_limits::ENTRIES_MAX`] entries and a
/// directory of at most [`xlsx_limits::DIRECTORY_MAX`] bytes, and no zip64 records (an xlsx
/// under 4 GiB never needs them).
fn check_eocd(bytes: &[u8]) -> Result<(), String> {
    use xlsx_limits as l;
    const EOCD: &[u8] = b"PK\x05\x06";
    const ZIP64_LOCATOR: &[u8] = b"PK\x06\x07";
    let len = bytes.len();
    if len < 22 {
        return Err("not a readable xlsx (zip) workbook: too short".into());
    }
    let from = len.saturating_sub(22 + 65_535);
    let mut found = false;
    for pos in (from..=len - 22).rev() {
        if &bytes[pos..pos + 4] != EOCD {
            continue;
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[pos + o], bytes[pos + o + 1]]);
        let u32_at = |o: usize| {
            u32::from_le_bytes([
                bytes[pos + o],
                bytes[pos + o + 1],
                bytes[pos + o + 2],
                bytes[pos + o + 3],
            ])
        };
        if pos + 22 + usize::from(u16_at(20)) != len {
            continue; // not a record whose comment ends the file
        }
        found = true;
        let entries = u16_at(10);
        let dir_size = u32_at(12);
        if entries == u16::MAX
            || dir_size == u32::MAX
            || (pos >= 20 && &bytes[pos - 20..pos - 16] == ZIP64_LOCATOR)
        {
            return Err("a zip64 container: not an xlsx workbook wavelift reads; refused".into());
        }
        if usize::from(entries) > l::ENTRIES_MAX {
            return Err(format!(
                "the workbook declares {entries} parts, more than the limit of {}; refused",
                l::ENTRIES_MAX
            ));
        }
        if u64::from(dir_size) > l::DIRECTORY_MAX {
            return Err(format!(
                "the workbook's zip directory is {}, more than the {} limit; refused",
                crate::fsio::human(u64::from(dir_size)),
                crate::fsio::human(l::DIRECTORY_MAX)
            ));
        }
    }
    if !found {
        return Err("not a readable xlsx (zip) workbook: no end of central directory".into());
    }
    Ok(())
}

/// The `<sst uniqueCount="…">` start tag, within the first 64 KiB of the shared strings: the
/// library reserves that many strings up front.
fn check_sst(head: &[u8], part: &str) -> Result<(), String> {
    let text = String::from_utf8_lossy(head);
    let mut rest: &str = &text;
    while let Some(i) = rest.find('<') {
        let tag = &rest[i + 1..];
        let Some(end) = tag.find('>') else { break };
        let t = &tag[..end];
        rest = &tag[end..];
        if t.starts_with(['?', '!', '/']) {
            continue;
        }
        let qname = t
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if qname.rsplit(':').next() != Some("sst") {
            return Err(format!("{part}: starts with <{qname}>, not <sst>; refused"));
        }
        let Some(v) = attr(t, "uniqueCount") else {
            return Ok(());
        };
        let ok = !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
            && v.parse::<u64>()
                .is_ok_and(|n| n <= xlsx_limits::UNIQUE_STRINGS_MAX);
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "{part} declares uniqueCount=\"{}\", more than the limit of {} shared strings; \
                 refused (wavelift::inventory::table::xlsx_limits)",
                v.chars().take(40).collect::<String>(),
                xlsx_limits::UNIQUE_STRINGS_MAX
            ))
        };
    }
    Err(format!(
        "{part}: no <sst> element in its first 64 KiB; refused"
    ))
}

/// The value of attribute `name` in a start tag's text (`sst count="3" uniqueCount="2"`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i > 0 && rest.as_bytes()[i - 1].is_ascii_whitespace();
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        if !before_ok {
            continue;
        }
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let q = after.chars().next()?;
        if q != '"' && q != '\'' {
            return None;
        }
        let v = &after[1..];
        return v.find(q).map(|e| &v[..e]);
    }
    None
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
