//! Reading the rows of an XLSX sheet (the first, or one named) as text
//! cells, as a user sees them in Excel: whole numbers without a decimal
//! point (a phone number typed into a number cell is 13800138000, not
//! 1.38e10), dates as ISO dates, booleans as TRUE/FALSE. A row's number is
//! its number in the sheet, so refused rows are named as Excel names them.
//!
//! calamine needs the whole file in memory (a ZIP is read by seeking) and
//! keeps the workbook's shared-strings table — every distinct text in it —
//! for as long as the sheet is read; the cells themselves are streamed
//! (`worksheet_cells_reader`), never the whole sheet at once. So before a
//! workbook is read its parts are inflated once and counted
//! ([`check_expansion`]): a small file that inflates to gigabytes (a "ZIP
//! bomb") is refused before it can take the service's memory. No I/O.

use std::io::{self, Cursor, Read};

use calamine::{DataRef, Reader, Xlsx, open_workbook_from_rs};

use super::import::{MAX_COLUMNS, Record};

/// Why a workbook cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    /// No sheet of that name; the workbook's sheets are listed.
    #[error("the workbook has no sheet {wanted:?} (it has: {})", .found.join(", "))]
    NoSuchSheet { wanted: String, found: Vec<String> },
    /// The workbook has no sheet at all.
    #[error("the workbook has no sheet")]
    NoSheet,
    /// Not a workbook calamine can read.
    #[error("not a readable XLSX workbook: {0}")]
    Unreadable(String),
    /// A part inflates to more than it may.
    #[error("the workbook's {part} holds more than {limit} bytes once uncompressed; save the sheet as CSV (UTF-8) and upload that")]
    TooLarge { part: String, limit: u64 },
}

/// How much a workbook may hold once uncompressed.
#[derive(Debug, Clone, Copy)]
pub struct ExpansionLimits {
    /// All its parts together (a sheet's XML is streamed: this bounds time, not memory).
    pub total: u64,
    /// The shared-strings table, which is held in memory while a sheet is read.
    pub shared_strings: u64,
}

/// The limits a workbook of up to 36 MiB (a million typical rows) stays well within.
pub const EXPANSION_LIMITS: ExpansionLimits = ExpansionLimits { total: 2 << 30, shared_strings: 256 << 20 };

/// Inflates every part of the workbook in `bytes` once, counting the bytes
/// (the sizes a ZIP declares can lie, so they are not trusted), and stops
/// at the first part past `limits`.
pub fn check_expansion(bytes: &[u8], limits: ExpansionLimits) -> Result<(), SheetError> {
    let unreadable = |e: &dyn std::fmt::Display| SheetError::Unreadable(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| unreadable(&e))?;
    let mut total = 0_u64;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| unreadable(&e))?;
        let part = entry.name().to_owned();
        let shared = part.eq_ignore_ascii_case("xl/sharedStrings.xml");
        let limit = if shared { limits.shared_strings.min(limits.total - total) } else { limits.total - total };
        let inflated = io::copy(&mut entry.take(limit + 1), &mut io::sink()).map_err(|e| unreadable(&e))?;
        if inflated > limit {
            let (part, limit) =
                if shared && limit == limits.shared_strings { (part, limit) } else { ("parts together".to_owned(), limits.total) };
            return Err(SheetError::TooLarge { part, limit });
        }
        total += inflated;
    }
    Ok(())
}

/// Reads the rows of sheet `sheet` (None: the first) of the workbook in
/// `bytes`, handing each to `row` in order (blank rows skipped) until it
/// answers false. Returns the sheet's name.
pub fn read_rows(bytes: &[u8], sheet: Option<&str>, mut row: impl FnMut(Record) -> bool) -> Result<String, SheetError> {
    let mut workbook: Xlsx<Cursor<&[u8]>> =
        open_workbook_from_rs(Cursor::new(bytes)).map_err(|e: calamine::XlsxError| SheetError::Unreadable(e.to_string()))?;
    let names = workbook.sheet_names();
    let name = match sheet.map(str::trim).filter(|s| !s.is_empty()) {
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .cloned()
            .ok_or_else(|| SheetError::NoSuchSheet { wanted: wanted.to_owned(), found: names.clone() })?,
        None => names.first().cloned().ok_or(SheetError::NoSheet)?,
    };
    let mut cells = workbook.worksheet_cells_reader(&name).map_err(|e| SheetError::Unreadable(e.to_string()))?;
    let mut current: Option<(u32, Vec<String>)> = None;
    while let Some(cell) = cells.next_cell().map_err(|e| SheetError::Unreadable(e.to_string()))? {
        let (r, c) = cell.get_position();
        if c as usize >= MAX_COLUMNS {
            continue;
        }
        let text = cell_text(cell.get_value());
        if current.as_ref().is_some_and(|(at, _)| *at != r)
            && let Some(done) = current.take().and_then(|(at, cells)| record(at, cells))
            && !row(done)
        {
            return Ok(name);
        }
        let (_, cells) = current.get_or_insert_with(|| (r, Vec::new()));
        let c = c as usize;
        if cells.len() <= c {
            cells.resize(c + 1, String::new());
        }
        cells[c] = text;
    }
    if let Some(done) = current.and_then(|(at, cells)| record(at, cells)) {
        row(done);
    }
    Ok(name)
}

/// Row `at` (0-based) with `cells`; None when every cell is empty.
fn record(at: u32, cells: Vec<String>) -> Option<Record> {
    cells.iter().any(|c| !c.trim().is_empty()).then(|| Record { number: u64::from(at) + 1, cells })
}

/// A cell as text, as Excel shows it.
fn cell_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::Empty => String::new(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        DataRef::Float(f) => f.to_string(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(d) => match d.as_datetime() {
            Some(t) if d.is_datetime() && t.time() == chrono::NaiveTime::MIN => t.date().to_string(),
            Some(t) if d.is_datetime() => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            _ => d.as_f64().to_string(),
        },
        DataRef::Error(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::{ZipWriter, write::SimpleFileOptions};

    use super::*;

    /// A ZIP of `parts`, each `size` zero bytes (which deflate to almost nothing).
    fn zip_of(parts: &[(&str, usize)]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, size) in parts {
            zip.start_file(*name, SimpleFileOptions::default()).unwrap();
            zip.write_all(&vec![0; *size]).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_workbook_that_inflates_past_its_limits_is_refused_by_the_bytes_it_inflates_to() {
        let limits = ExpansionLimits { total: 1 << 20, shared_strings: 256 << 10 };
        assert_eq!(
            check_expansion(&zip_of(&[("xl/worksheets/sheet1.xml", 600 << 10), ("xl/sharedStrings.xml", 200 << 10)]), limits),
            Ok(())
        );
        let bomb = zip_of(&[("xl/worksheets/sheet1.xml", 600 << 10), ("xl/worksheets/sheet2.xml", 600 << 10)]);
        assert!(bomb.len() < 20 << 10, "a small file: {} bytes", bomb.len());
        assert_eq!(check_expansion(&bomb, limits), Err(SheetError::TooLarge { part: "parts together".into(), limit: 1 << 20 }));
        let strings = zip_of(&[("xl/sharedStrings.xml", 300 << 10)]);
        assert_eq!(check_expansion(&strings, limits), Err(SheetError::TooLarge { part: "xl/sharedStrings.xml".into(), limit: 256 << 10 }));
        assert!(matches!(check_expansion(b"PK\x03\x04 not a zip", limits), Err(SheetError::Unreadable(_))));
    }
}
