//! Writing a spreadsheet row by row into memory, to be sent as it fills:
//! CSV (RFC 4180, UTF-8 with a BOM, cells that a spreadsheet would run as
//! formulas neutralised) or XLSX (an Office Open XML workbook streamed as a
//! ZIP whose entries carry data descriptors, so nothing is ever written
//! twice and the file never has to be whole in memory). The caller takes
//! the bytes ready so far with [`SheetWriter::take`] after each batch of
//! rows; memory stays at one batch's bytes whatever the file's size. No I/O.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex, PoisonError},
};

use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions, write::StreamWriter};

use super::import::push_csv_cell;

/// The MIME type of a CSV export.
pub const CSV_TYPE: &str = "text/csv; charset=utf-8";
/// The MIME type of an XLSX export.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A spreadsheet being written: call [`cell`](Self::cell) for each cell of a
/// row, then [`end_row`](Self::end_row); [`take`](Self::take) the bytes as
/// they accumulate and [`finish`](Self::finish) at the end.
pub enum SheetWriter {
    Csv(CsvWriter),
    Xlsx(Box<XlsxWriter>),
}

impl SheetWriter {
    /// A CSV writer.
    pub fn csv() -> Self {
        Self::Csv(CsvWriter::new())
    }

    /// An XLSX writer whose sheets start with `header`.
    pub fn xlsx(header: Vec<String>) -> io::Result<Self> {
        Ok(Self::Xlsx(Box::new(XlsxWriter::new(header)?)))
    }

    /// Its MIME type.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Csv(_) => CSV_TYPE,
            Self::Xlsx(_) => XLSX_TYPE,
        }
    }

    /// The file extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Csv(_) => "csv",
            Self::Xlsx(_) => "xlsx",
        }
    }

    /// Appends a cell to the current row.
    pub fn cell(&mut self, text: &str) -> io::Result<()> {
        match self {
            Self::Csv(w) => {
                w.cell(text);
                Ok(())
            }
            Self::Xlsx(w) => w.cell(text),
        }
    }

    /// Ends the current row.
    pub fn end_row(&mut self) -> io::Result<()> {
        match self {
            Self::Csv(w) => {
                w.end_row();
                Ok(())
            }
            Self::Xlsx(w) => w.end_row(),
        }
    }

    /// A whole row.
    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) -> io::Result<()> {
        for cell in cells {
            self.cell(cell)?;
        }
        self.end_row()
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        match self {
            Self::Csv(w) => std::mem::take(&mut w.out),
            Self::Xlsx(w) => w.take(),
        }
    }

    /// How many bytes are waiting to be taken.
    pub fn pending(&self) -> usize {
        match self {
            Self::Csv(w) => w.out.len(),
            Self::Xlsx(w) => w.pending(),
        }
    }

    /// Ends the file: the last bytes.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Self::Csv(mut w) => Ok(std::mem::take(&mut w.out)),
            Self::Xlsx(w) => w.finish(),
        }
    }
}

/// A CSV file in memory.
pub struct CsvWriter {
    out: Vec<u8>,
    row_started: bool,
}

impl CsvWriter {
    /// A file that starts with a UTF-8 BOM (Excel reads the file as GBK or
    /// Latin-1 without one).
    fn new() -> Self {
        Self { out: b"\xef\xbb\xbf".to_vec(), row_started: false }
    }

    fn cell(&mut self, text: &str) {
        if self.row_started {
            self.out.push(b',');
        }
        self.row_started = true;
        push_csv_cell(text, &mut self.out);
    }

    fn end_row(&mut self) {
        self.out.extend_from_slice(b"\r\n");
        self.row_started = false;
    }
}

/// The most rows a sheet holds (Excel's limit), the header included.
pub const MAX_SHEET_ROWS: u32 = 1_048_576;
/// The longest text a cell holds (Excel's limit), in UTF-16 units.
const MAX_CELL_UNITS: usize = 32_767;
/// A sheet's XML is handed to the compressor in pieces of this size.
const XML_PIECE: usize = 64 << 10;
/// A sheet is closed and the next one begun before its XML reaches this
/// size, so that no entry needs ZIP64 (which some Excel versions refuse in
/// a streamed file).
const MAX_SHEET_BYTES: u64 = 3 << 30;

/// The bytes the ZIP writer writes, shared with the [`XlsxWriter`] that takes them.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An XLSX workbook being streamed: each sheet's XML is compressed as its
/// rows arrive; a new sheet (with the header again) begins when one is full.
pub struct XlsxWriter {
    zip: ZipWriter<StreamWriter<Shared>>,
    out: Shared,
    header: Vec<String>,
    /// The current sheet's XML not yet handed to the compressor.
    xml: Vec<u8>,
    /// The XML of the current sheet handed on so far.
    sheet_bytes: u64,
    sheets: u32,
    /// Rows in the current sheet, the header included.
    rows: u32,
    /// The next cell's column (0-based) in the current row.
    column: usize,
    /// The current row's number, as text.
    row_number: String,
    /// "A", "B", ... "AA": the column letters, made once.
    letters: Vec<String>,
    /// The current sheet is full: the next row begins a new one.
    full: bool,
}

fn entry_options() -> SimpleFileOptions {
    // The fastest deflate level: a customer sheet still shrinks about fivefold, at several times the speed of the default.
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated).compression_level(Some(1)).large_file(false)
}

impl XlsxWriter {
    fn new(header: Vec<String>) -> io::Result<Self> {
        let out = Shared::default();
        let letters = (0..header.len().max(1)).map(column_letters).collect();
        let mut writer = Self {
            zip: ZipWriter::new_stream(out.clone()),
            out,
            header,
            xml: Vec::with_capacity(XML_PIECE * 2),
            sheet_bytes: 0,
            sheets: 0,
            rows: 0,
            column: 0,
            row_number: String::new(),
            letters,
            full: false,
        };
        writer.begin_sheet()?;
        Ok(writer)
    }

    fn begin_sheet(&mut self) -> io::Result<()> {
        self.sheets += 1;
        self.zip.start_file(format!("xl/worksheets/sheet{}.xml", self.sheets), entry_options()).map_err(io::Error::other)?;
        self.xml.extend_from_slice(
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        );
        self.sheet_bytes = 0;
        self.rows = 0;
        self.full = false;
        let header = std::mem::take(&mut self.header);
        for cell in &header {
            self.cell(cell)?;
        }
        self.header = header;
        self.close_row();
        Ok(())
    }

    fn cell(&mut self, text: &str) -> io::Result<()> {
        if self.column == 0 && self.full {
            // Begun only when a row needs it: an export that fills a sheet exactly ends without an empty one.
            self.begin_sheet()?;
        }
        let column = self.column;
        self.column += 1;
        if column == 0 {
            self.open_row();
        }
        if text.is_empty() {
            return Ok(());
        }
        if column >= self.letters.len() {
            self.letters.push(column_letters(column));
        }
        self.xml.extend_from_slice(b"<c r=\"");
        self.xml.extend_from_slice(self.letters[column].as_bytes());
        self.xml.extend_from_slice(self.row_number.as_bytes());
        self.xml.extend_from_slice(b"\" t=\"inlineStr\"><is><t");
        if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
            self.xml.extend_from_slice(b" xml:space=\"preserve\"");
        }
        self.xml.push(b'>');
        push_xml_text(text, &mut self.xml);
        self.xml.extend_from_slice(b"</t></is></c>");
        Ok(())
    }

    fn open_row(&mut self) {
        self.row_number = (self.rows + 1).to_string();
        self.xml.extend_from_slice(b"<row r=\"");
        self.xml.extend_from_slice(self.row_number.as_bytes());
        self.xml.extend_from_slice(b"\">");
    }

    fn close_row(&mut self) {
        if self.column == 0 && self.full {
            // An empty row after a full sheet: never written, so never begins a sheet of its own.
            return;
        }
        if self.column == 0 {
            // A row without cells still takes its number.
            self.open_row();
        }
        self.xml.extend_from_slice(b"</row>");
        self.rows += 1;
        self.column = 0;
    }

    fn end_row(&mut self) -> io::Result<()> {
        self.close_row();
        if self.xml.len() >= XML_PIECE {
            self.hand_on()?;
        }
        if !self.full && (self.rows >= MAX_SHEET_ROWS || self.sheet_bytes >= MAX_SHEET_BYTES) {
            self.end_sheet()?;
            self.full = true;
        }
        Ok(())
    }

    /// Compresses the XML gathered so far.
    fn hand_on(&mut self) -> io::Result<()> {
        self.zip.write_all(&self.xml)?;
        self.sheet_bytes += self.xml.len() as u64;
        self.xml.clear();
        Ok(())
    }

    fn end_sheet(&mut self) -> io::Result<()> {
        self.xml.extend_from_slice(b"</sheetData></worksheet>");
        self.hand_on()
    }

    fn take(&mut self) -> Vec<u8> {
        self.out.take()
    }

    fn pending(&self) -> usize {
        self.out.len()
    }

    /// Ends the last sheet and writes the workbook's other parts.
    fn finish(mut self) -> io::Result<Vec<u8>> {
        if self.column > 0 {
            self.close_row();
        }
        if !self.full {
            self.end_sheet()?;
        }
        let sheets = self.sheets;
        let mut part = |name: &str, xml: String| -> io::Result<()> {
            self.zip.start_file(name, entry_options()).map_err(io::Error::other)?;
            self.zip.write_all(xml.as_bytes())
        };
        part("xl/workbook.xml", workbook_xml(sheets))?;
        part("xl/_rels/workbook.xml.rels", workbook_rels_xml(sheets))?;
        part("xl/styles.xml", STYLES_XML.to_owned())?;
        part("_rels/.rels", ROOT_RELS_XML.to_owned())?;
        part("[Content_Types].xml", content_types_xml(sheets))?;
        self.zip.finish().map_err(io::Error::other)?;
        Ok(self.out.take())
    }
}

/// Column `index` (0-based) as Excel letters: 0 → "A", 25 → "Z", 26 → "AA".
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// Appends `text` escaped for XML, without the characters XML 1.0 cannot
/// hold (control characters other than tab and line breaks), with a
/// literal `_x` escaped as `_x005F_x` (Excel reads `_xHHHH_` as the character
/// HHHH), cut at Excel's cell limit of 32 767 UTF-16 units.
fn push_xml_text(text: &str, out: &mut Vec<u8>) {
    let plain =
        |c: char| !matches!(c, '&' | '<' | '>' | '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    // UTF-8 is never shorter than UTF-16 in units, so a text of at most this many bytes fits.
    if text.len() <= MAX_CELL_UNITS && text.chars().all(plain) && !text.contains("_x") {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let mut units = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        units += c.len_utf16();
        if units > MAX_CELL_UNITS {
            break;
        }
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '_' if chars.peek() == Some(&'x') => out.extend_from_slice(b"_x005F_"),
            c if !plain(c) => {}
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn workbook_xml(sheets: u32) -> String {
    let list: String = (1..=sheets).map(|i| format!(r#"<sheet name="Sheet{i}" sheetId="{i}" r:id="rId{i}"/>"#)).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{list}</sheets></workbook>"#
    )
}

fn workbook_rels_xml(sheets: u32) -> String {
    let list: String = (1..=sheets)
        .map(|i| {
            format!(r#"<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>"#)
        })
        .collect();
    let styles = sheets + 1;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{list}<Relationship Id="rId{styles}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#
    )
}

fn content_types_xml(sheets: u32) -> String {
    let list: String = (1..=sheets)
        .map(|i| format!(r#"<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>{list}</Types>"#
    )
}

const ROOT_RELS_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;

/// The least a styles part holds for Excel to open the workbook without repairing it.
const STYLES_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>"#;

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use calamine::{Data, Reader, Xlsx};

    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_neutralised() {
        let mut w = SheetWriter::csv();
        w.row(["name", "note"]).unwrap();
        w.row(["=1+2", "a,\"b\"\nc"]).unwrap();
        w.row(["-12.5", ""]).unwrap();
        let mut bytes = w.take();
        bytes.extend(w.finish().unwrap());
        assert_eq!(String::from_utf8(bytes).unwrap(), "\u{feff}name,note\r\n'=1+2,\"a,\"\"b\"\"\nc\"\r\n-12.5,\r\n");
    }

    #[test]
    fn column_letters_count_like_excel() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }

    fn read_back(bytes: Vec<u8>) -> Vec<(String, Vec<Vec<String>>)> {
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
        book.worksheets()
            .into_iter()
            .map(|(name, range)| {
                let rows = range
                    .rows()
                    .map(|r| {
                        r.iter()
                            .map(|c| match c {
                                Data::String(s) => s.clone(),
                                Data::Empty => String::new(),
                                other => panic!("not a text cell: {other:?}"),
                            })
                            .collect()
                    })
                    .collect();
                (name, rows)
            })
            .collect()
    }

    #[test]
    fn an_xlsx_reads_back_cell_for_cell() {
        let mut w = SheetWriter::xlsx(vec!["名称".into(), "phone".into(), "note".into()]).unwrap();
        let mut bytes = Vec::new();
        w.row(["张三", "+8613812341234", " <a & b> \u{1} _x0041_ "]).unwrap();
        bytes.extend(w.take());
        w.row(["=SUM(A1)", "", "last"]).unwrap();
        bytes.extend(w.finish().unwrap());
        let sheets = read_back(bytes);
        assert_eq!(sheets.len(), 1);
        assert_eq!(
            sheets[0].1,
            vec![
                vec!["名称".to_owned(), "phone".into(), "note".into()],
                vec!["张三".into(), "+8613812341234".into(), " <a & b>  _x0041_ ".into()],
                // A text cell is never run as a formula: the value stays as it was.
                vec!["=SUM(A1)".into(), "".into(), "last".into()],
            ]
        );
    }

    #[test]
    fn a_full_sheet_continues_on_the_next_with_the_header() {
        let mut w = SheetWriter::xlsx(vec!["n".into()]).unwrap();
        let mut bytes = Vec::new();
        // A second sheet's worth and two more rows; the third sheet would start just after the last.
        let rows = MAX_SHEET_ROWS + 2;
        for i in 0..rows {
            w.row([i.to_string().as_str()]).unwrap();
            if w.pending() > 1 << 20 {
                bytes.extend(w.take());
            }
        }
        bytes.extend(w.finish().unwrap());
        let sheets = read_back(bytes);
        assert_eq!(sheets.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["Sheet1", "Sheet2"]);
        assert_eq!(sheets[0].1.len() as u32, MAX_SHEET_ROWS);
        assert_eq!(sheets[1].1[0], vec!["n".to_owned()]);
        let last: Vec<&String> = sheets[1].1.iter().skip(1).map(|r| &r[0]).collect();
        assert_eq!(last, [&(MAX_SHEET_ROWS - 1).to_string(), &MAX_SHEET_ROWS.to_string(), &(MAX_SHEET_ROWS + 1).to_string()]);
    }
}
