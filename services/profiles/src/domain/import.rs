//! The pure half of bulk import and export (issue 15): what kind of file an
//! upload is, its text encoding (UTF-8 with or without a BOM, or GB18030 —
//! the superset of GBK that Chinese Excel writes — detected or declared,
//! decoded chunk by chunk as it streams in), the column correspondence
//! (列对应设置) suggested from a sheet's headers in Chinese and English with
//! its confidence, the spreadsheet cells that need parsing (tags, birthdays),
//! and the neutralising of exported cells a spreadsheet would run as
//! formulas. No I/O.

use std::borrow::Cow;

use encoding_rs::{Decoder, DecoderResult, GB18030, UTF_8};
use serde::{Deserialize, Serialize};

/// What an upload's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Text: CSV.
    Csv,
    /// An Office Open XML package (a ZIP): XLSX.
    Xlsx,
    /// An OLE compound file: an encrypted (password-protected) XLSX, or a legacy XLS.
    Encrypted,
    /// Anything else with NUL bytes: not a spreadsheet.
    Binary,
}

/// The kind of file whose first bytes are `head`.
pub fn sniff(head: &[u8]) -> FileKind {
    match head {
        [b'P', b'K', 3, 4, ..] => FileKind::Xlsx,
        [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, ..] => FileKind::Encrypted,
        _ if head.contains(&0) => FileKind::Binary,
        _ => FileKind::Csv,
    }
}

/// A CSV file's text encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// GB18030, which reads GBK and GB2312 too.
    Gb18030,
}

impl Encoding {
    /// The encoding named `name` ("UTF-8", "GBK", "GB18030", "GB2312"; any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "utf8" => Some(Self::Utf8),
            "gbk" | "gb18030" | "gb2312" | "cp936" => Some(Self::Gb18030),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Gb18030 => "GB18030",
        }
    }
}

/// The encoding of a file whose first bytes are `head`: UTF-8 when they
/// are valid UTF-8 (a multi-byte sequence cut at the end of `head` allowed),
/// else GB18030. `complete`: `head` is the whole file.
pub fn detect(head: &[u8], complete: bool) -> Encoding {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    match std::str::from_utf8(head) {
        Ok(_) => Encoding::Utf8,
        // `error_len` None: the input ended inside a sequence, which the next chunk may finish.
        Err(e) if e.error_len().is_none() && !complete => Encoding::Utf8,
        Err(_) => Encoding::Gb18030,
    }
}

/// Bytes that are not text in the file's encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset} is not {encoding} text")]
pub struct NotText {
    pub offset: u64,
    pub encoding: &'static str,
}

/// Decodes a file's bytes to text chunk by chunk, as they stream in: a
/// character cut between two chunks is finished by the next; a UTF-8 BOM is
/// dropped; bytes that are not text in the encoding are an error (never
/// replaced: a wrongly detected file must not import as mojibake).
pub struct TextDecoder {
    decoder: Decoder,
    encoding: Encoding,
    offset: u64,
}

impl TextDecoder {
    /// A decoder of `encoding`.
    pub fn new(encoding: Encoding) -> Self {
        let decoder = match encoding {
            Encoding::Utf8 => UTF_8.new_decoder_with_bom_removal(),
            Encoding::Gb18030 => GB18030.new_decoder(),
        };
        Self { decoder, encoding, offset: 0 }
    }

    /// The text of `chunk` (`last`: no chunk follows), appended to `out`.
    pub fn decode(&mut self, chunk: &[u8], last: bool, out: &mut String) -> Result<(), NotText> {
        out.reserve(self.decoder.max_utf8_buffer_length_without_replacement(chunk.len()).unwrap_or(chunk.len() * 4 + 16));
        let (result, read) = self.decoder.decode_to_string_without_replacement(chunk, out, last);
        match result {
            DecoderResult::InputEmpty => {
                self.offset += read as u64;
                Ok(())
            }
            DecoderResult::Malformed(bad, extra) => {
                let at = read.saturating_sub(usize::from(bad) + usize::from(extra));
                Err(NotText { offset: self.offset + at as u64, encoding: self.encoding.as_str() })
            }
            // The reserve above makes room for the worst case; should it not, the chunk is not text we can take.
            DecoderResult::OutputFull => Err(NotText { offset: self.offset + read as u64, encoding: self.encoding.as_str() }),
        }
    }
}

/// The delimiter of a CSV file whose first line is `line`: the most frequent
/// of comma, semicolon and tab outside quotes (a comma when none is there).
pub fn detect_delimiter(line: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in line.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
                    c.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts.iter().filter(|(_, n)| *n > 0).max_by_key(|(_, n)| *n).map_or(b',', |(d, _)| *d)
}

/// The most columns a sheet's row is read with (Excel's own limit is
/// 16 384; a customer list has tens): cells beyond are ignored.
pub const MAX_COLUMNS: usize = 1_024;

/// The largest record (row) a CSV file may have, in bytes: a quote left
/// open would otherwise swallow the rest of the file into one cell.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// One record of a CSV file: its number (1: the header row), as a
/// spreadsheet numbers rows, and its cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub number: u64,
    pub cells: Vec<String>,
}

/// Splits decoded CSV text into records as it streams in (RFC 4180: quoted
/// cells with delimiters, doubled quotes and line breaks inside, a quote or
/// a record cut between chunks); blank lines are skipped and not counted
/// (a row's number is its record's: the header is 1).
pub struct RecordSplitter {
    reader: csv_core::Reader,
    field_bytes: Vec<u8>,
    field_ends: Vec<usize>,
    used: (usize, usize),
    number: u64,
}

impl RecordSplitter {
    /// A splitter of cells separated by `delimiter`.
    pub fn new(delimiter: u8) -> Self {
        let reader = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        Self { reader, field_bytes: vec![0; 4096], field_ends: vec![0; 64], used: (0, 0), number: 0 }
    }

    /// The records `text` completes (`last`: no more text follows).
    pub fn feed(&mut self, text: &str, last: bool) -> Vec<Record> {
        use csv_core::ReadRecordResult;
        let mut input = text.as_bytes();
        let mut records = Vec::new();
        // An empty input tells the reader the file ended: only when it has.
        if input.is_empty() && !last {
            return records;
        }
        loop {
            let (bytes, ends) = (&mut self.field_bytes[self.used.0..], &mut self.field_ends[self.used.1..]);
            let (result, read, wrote, ended) = self.reader.read_record(input, bytes, ends);
            input = &input[read..];
            self.used = (self.used.0 + wrote, self.used.1 + ended);
            match result {
                ReadRecordResult::OutputFull => self.field_bytes.resize(self.field_bytes.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.field_ends.resize(self.field_ends.len() * 2, 0),
                ReadRecordResult::Record => records.extend(self.take_record()),
                // All of `text` read; at the end of the file the next turn (empty input) ends the last record.
                ReadRecordResult::InputEmpty if last => {}
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return records,
            }
        }
    }

    /// Bytes of the record being read that its end has not reached yet.
    pub fn pending_bytes(&self) -> usize {
        self.used.0
    }

    /// The record the reader just completed, counted; None when all its cells are empty.
    fn take_record(&mut self) -> Option<Record> {
        self.number += 1;
        let (bytes, ends) = (&self.field_bytes[..self.used.0], &self.field_ends[..self.used.1]);
        let mut start = 0;
        let cells: Vec<String> = ends
            .iter()
            .map(|&end| {
                // The input was text and cells split at ASCII delimiters: each cell is text too.
                let cell = String::from_utf8_lossy(&bytes[start..end]).into_owned();
                start = end;
                cell
            })
            .collect();
        self.used = (0, 0);
        cells.iter().any(|c| !c.is_empty()).then_some(Record { number: self.number, cells })
    }
}

/// A customer field a column can fill.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    DisplayName,
    GivenName,
    FamilyName,
    /// An email address (several columns may each hold one).
    Email,
    /// A phone number (several columns may each hold one).
    Phone,
    Company,
    JobTitle,
    Industry,
    /// A postal address's street lines, as one text.
    Address,
    City,
    Region,
    PostalCode,
    Country,
    Birthday,
    /// Tags, several in one cell.
    Tags,
    Locale,
    TimeZone,
    /// An id in the system the list came from.
    ExternalId,
    /// A custom attribute of this name.
    Attribute(String),
}

/// The named fields, as the API names them (custom attributes are `attributes.<name>`).
const NAMES: &[(Field, &str)] = &[
    (Field::DisplayName, "display_name"),
    (Field::GivenName, "given_name"),
    (Field::FamilyName, "family_name"),
    (Field::Email, "email"),
    (Field::Phone, "phone"),
    (Field::Company, "company"),
    (Field::JobTitle, "job_title"),
    (Field::Industry, "industry"),
    (Field::Address, "address"),
    (Field::City, "city"),
    (Field::Region, "region"),
    (Field::PostalCode, "postal_code"),
    (Field::Country, "country"),
    (Field::Birthday, "birthday"),
    (Field::Tags, "tags"),
    (Field::Locale, "locale"),
    (Field::TimeZone, "time_zone"),
    (Field::ExternalId, "external_id"),
];

/// The longest custom attribute name a column may fill.
const MAX_ATTRIBUTE_NAME: usize = 64;

impl Field {
    /// Whether several columns may fill it.
    pub fn repeats(&self) -> bool {
        matches!(self, Self::Email | Self::Phone | Self::Tags)
    }

    /// The field named `name` ("email", "attributes.来源"); None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(attribute) = name.strip_prefix("attributes.") {
            let valid = !attribute.trim().is_empty() && attribute.chars().count() <= MAX_ATTRIBUTE_NAME && attribute == attribute.trim();
            return valid.then(|| Self::Attribute(attribute.to_owned()));
        }
        NAMES.iter().find(|(_, n)| *n == name).map(|(field, _)| field.clone())
    }

    /// Its name, as [`Field::parse`] reads it.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Self::Attribute(attribute) => Cow::Owned(format!("attributes.{attribute}")),
            field => Cow::Borrowed(NAMES.iter().find(|(f, _)| f == field).map_or("", |(_, n)| *n)),
        }
    }

    /// The customer field (as field masks and write permissions name it) it writes.
    pub fn path(&self) -> &'static str {
        match self {
            Self::DisplayName => "display_name",
            Self::GivenName => "given_name",
            Self::FamilyName => "family_name",
            Self::Email => "emails",
            Self::Phone => "phones",
            Self::Company => "company",
            Self::JobTitle => "job_title",
            Self::Industry => "industry",
            Self::Address | Self::City | Self::Region | Self::PostalCode | Self::Country => "addresses",
            Self::Birthday => "birthday",
            Self::Tags => "tags",
            Self::Locale => "locale",
            Self::TimeZone => "time_zone",
            Self::ExternalId | Self::Attribute(_) => "attributes",
        }
    }

    /// Whether its cells are personal data, shown masked to callers without `pii`.
    pub fn personal(&self) -> bool {
        matches!(
            self,
            Self::DisplayName
                | Self::GivenName
                | Self::FamilyName
                | Self::Email
                | Self::Phone
                | Self::Address
                | Self::Birthday
                | Self::PostalCode
        )
    }
}

/// What a job imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Customers,
    Transactions,
    RelatedPersons,
    Occupancies,
}

impl Kind {
    /// As the job stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customers => "CUSTOMERS",
            Self::Transactions => "TRANSACTIONS",
            Self::RelatedPersons => "RELATED_PERSONS",
            Self::Occupancies => "OCCUPANCIES",
        }
    }

    /// The kind stored as `name` (an unknown name is a customers job, as every job was before kinds).
    pub fn parse(name: &str) -> Self {
        match name {
            "TRANSACTIONS" => Self::Transactions,
            "RELATED_PERSONS" => Self::RelatedPersons,
            "OCCUPANCIES" => Self::Occupancies,
            _ => Self::Customers,
        }
    }
}

/// What a run does with the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Create a customer per valid row; a row matching a stored one is refused.
    CreateOnly,
    /// Update the customer a row matches, create one where none does.
    Upsert,
}

/// What identifies the customer a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKey {
    None,
    /// The row's first email address.
    Email,
    /// The row's first phone number.
    Phone,
    /// The external_id column.
    ExternalId,
    /// The duplicate matcher: the stored customers the row's customer is like.
    Duplicates,
}

/// What an update does with a field the row fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    Overwrite,
    Keep,
    FillBlanks,
}

/// How a job runs, as StartImportJob set it (stored with the job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// (0-based column, field name) for each mapped column.
    pub mapping: Vec<(usize, String)>,
    pub mode: Mode,
    pub match_key: MatchKey,
    /// The rule of fields without their own.
    pub rule: Rule,
    /// Rules by field name ("attributes" for every custom attribute).
    pub field_rules: std::collections::BTreeMap<String, Rule>,
    /// Put before national phone numbers, e.g. "86".
    pub calling_code: String,
    /// Check every row as `mode` would; write nothing.
    pub dry_run: bool,
    /// Who started the run (the token's subject): the actor of the changes it writes.
    #[serde(default)]
    pub started_by: String,
    /// Transactions: the IANA zone of times without an offset; empty: UTC.
    #[serde(default)]
    pub time_zone: String,
    /// Transactions: the currency of rows without one; empty: none.
    #[serde(default)]
    pub currency_code: String,
}

impl Settings {
    /// The rule for `field`: its own, "attributes" for a custom attribute, else the default.
    pub fn rule_for(&self, field: &Field) -> Rule {
        let own = self.field_rules.get(field.name().as_ref()).copied();
        let attributes = || matches!(field, Field::Attribute(_)).then(|| self.field_rules.get("attributes").copied()).flatten();
        own.or_else(attributes).unwrap_or(self.rule)
    }
}

/// Header names of each field, normalised (see [`normalise`]): Chinese and English.
const SYNONYMS: &[(Field, &[&str])] = &[
    (
        Field::DisplayName,
        &["客户名", "客户名称", "姓名", "名称", "名字", "客户", "name", "fullname", "displayname", "customername", "customer"],
    ),
    (Field::GivenName, &["名", "firstname", "givenname", "forename"]),
    (Field::FamilyName, &["姓", "姓氏", "lastname", "familyname", "surname"]),
    (Field::Email, &["邮箱", "电子邮件", "电子邮箱", "邮件", "email", "emailaddress", "mail"]),
    (
        Field::Phone,
        &[
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "电话号码",
            "联系电话",
            "移动电话",
            "phone",
            "mobile",
            "phonenumber",
            "tel",
            "telephone",
            "cell",
        ],
    ),
    (Field::Company, &["公司", "单位", "公司名称", "工作单位", "企业", "company", "organization", "organisation", "employer"]),
    (Field::JobTitle, &["职位", "职务", "岗位", "jobtitle", "title", "position", "role"]),
    (Field::Industry, &["行业", "所属行业", "industry", "sector"]),
    (Field::Address, &["地址", "住址", "联系地址", "详细地址", "address", "street", "streetaddress"]),
    (Field::City, &["城市", "市", "city", "town"]),
    (Field::Region, &["省", "省份", "地区", "region", "state", "province"]),
    (Field::PostalCode, &["邮编", "邮政编码", "postalcode", "zip", "zipcode", "postcode"]),
    (Field::Country, &["国家", "country"]),
    (Field::Birthday, &["生日", "出生日期", "出生年月日", "birthday", "birthdate", "dateofbirth", "dob"]),
    (Field::Tags, &["标签", "tags", "tag", "labels"]),
    (Field::Locale, &["语言", "locale", "language"]),
    (Field::TimeZone, &["时区", "timezone", "tz"]),
    (Field::ExternalId, &["编号", "客户编号", "外部编号", "id", "externalid", "customerid", "customerno", "code"]),
];

/// Headers that name no field although they contain a field's name: the
/// resource name an export writes ("resource_name" is not a display name).
const NOT_FIELDS: &[&str] = &["resourcename"];

/// A header made comparable: lowercase, without spaces, punctuation (ASCII
/// or full-width) and a trailing colon or asterisk ("手机号：", "Email *").
pub fn normalise(header: &str) -> String {
    header.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The field called `name` in a vocabulary of (field, name) pairs.
pub fn field_named<F: Copy>(names: &[(F, &str)], name: &str) -> Option<F> {
    names.iter().find(|(_, n)| *n == name).map(|(field, _)| *field)
}

/// What `field` is called in a vocabulary of (field, name) pairs ("" if it is not in it).
pub fn name_of<F: PartialEq>(names: &[(F, &'static str)], field: &F) -> &'static str {
    names.iter().find(|(f, _)| f == field).map_or("", |(_, n)| *n)
}

/// How a column is suggested to be mapped (to a customer [`Field`] by default).
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion<F = Field> {
    /// 0-based column.
    pub column: usize,
    /// Its header as the file has it.
    pub header: String,
    /// The field suggested; None: not recognised (the user maps it, or it
    /// goes to a custom attribute, or is skipped).
    pub field: Option<F>,
    /// 1.0: the header is a known name of the field; 0.6: it contains one;
    /// 0 with no field.
    pub confidence: f32,
}

/// The column correspondence suggested for a customer sheet with `headers`.
pub fn suggest(headers: &[String]) -> Vec<Suggestion> {
    suggest_among(headers, SYNONYMS, Field::repeats)
}

/// The column correspondence suggested for a sheet with `headers` among
/// fields with `synonyms` (normalised header names). A field that takes one
/// column (`repeats` false) goes to the most confident column (the first of
/// equals); the others are left unmapped.
pub fn suggest_among<F: Clone + PartialEq>(
    headers: &[String],
    synonyms: &[(F, &[&str])],
    repeats: impl Fn(&F) -> bool,
) -> Vec<Suggestion<F>> {
    let mut suggestions: Vec<Suggestion<F>> = headers
        .iter()
        .enumerate()
        .map(|(column, header)| {
            let key = normalise(header);
            if NOT_FIELDS.contains(&key.as_str()) {
                return Suggestion { column, header: header.clone(), field: None, confidence: 0.0 };
            }
            let exact = synonyms.iter().find(|(_, names)| names.contains(&key.as_str()));
            // A contained name of four bytes or more — two Chinese characters ("客户手机" has "手机"), four
            // letters ("mobilephone" has "mobile") — the longest; shorter ones ("名", "市", "id") only exactly.
            let within = || {
                synonyms
                    .iter()
                    .filter_map(|(field, names)| {
                        let longest = names.iter().filter(|n| n.len() >= 4 && key.contains(*n)).map(|n| n.len()).max()?;
                        Some((field, longest))
                    })
                    .max_by_key(|(_, len)| *len)
                    .map(|(field, _)| field)
            };
            let (field, confidence) = match exact {
                Some((field, _)) => (Some(field.clone()), 1.0),
                None => match within() {
                    Some(field) => (Some(field.clone()), 0.6),
                    None => (None, 0.0),
                },
            };
            Suggestion { column, header: header.clone(), field, confidence }
        })
        .collect();
    // One column per single field: the most confident keeps it.
    let mut order: Vec<usize> = (0..suggestions.len()).collect();
    order.sort_by(|a, b| suggestions[*b].confidence.total_cmp(&suggestions[*a].confidence).then(a.cmp(b)));
    let mut taken: Vec<F> = Vec::new();
    for i in order {
        let Some(field) = suggestions[i].field.clone() else { continue };
        if repeats(&field) {
            continue;
        }
        if taken.contains(&field) {
            suggestions[i].field = None;
            suggestions[i].confidence = 0.0;
        } else {
            taken.push(field);
        }
    }
    suggestions
}

/// The addresses or numbers in an email or phone cell: split on semicolons
/// (ASCII or full-width), as an export writes several — trimmed, empties dropped.
pub fn split_contacts(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([';', '；']).map(str::trim).filter(|c| !c.is_empty())
}

/// The tags in a cell: split on commas, semicolons, vertical bars and the
/// Chinese 、，； — trimmed, empties dropped.
pub fn split_tags(cell: &str) -> Vec<String> {
    cell.split([',', ';', '|', '、', '，', '；']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// A phone number as a list writes it, made international: "+…" as it is,
/// "00…" as "+…", and a national number ("13800138000", "021-5000 0000")
/// with `calling_code` (e.g. "86") in front of it, its trunk 0 dropped.
/// Without a calling code a national number stays as it is (and is refused
/// as not E.164 when checked).
pub fn international<'a>(cell: &'a str, calling_code: &str) -> Cow<'a, str> {
    let cell = cell.trim();
    if cell.starts_with('+') || calling_code.is_empty() {
        return Cow::Borrowed(cell);
    }
    if let Some(rest) = cell.strip_prefix("00") {
        return Cow::Owned(format!("+{rest}"));
    }
    Cow::Owned(format!("+{calling_code}{}", cell.trim_start_matches('0')))
}

/// A birthday as a spreadsheet writes it: (year if known, month, day).
/// "1990-03-02", "1990/3/2", "1990.03.02", "19900302", "1990年3月2日",
/// "3月2日", "03-02"; None when it is none of those or no date.
pub fn parse_birthday(cell: &str) -> Option<(Option<i32>, u32, u32)> {
    let cell = cell.trim();
    let digits: Vec<&str> = cell.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).collect();
    let (year, month, day) = match digits.as_slice() {
        [ymd] if ymd.len() == 8 => (Some(ymd[..4].parse().ok()?), ymd[4..6].parse().ok()?, ymd[6..].parse().ok()?),
        [y, m, d] if y.len() == 4 => (Some(y.parse().ok()?), m.parse().ok()?, d.parse().ok()?),
        [m, d] if m.len() <= 2 && d.len() <= 2 => (None, m.parse().ok()?, d.parse().ok()?),
        _ => return None,
    };
    // 29 February is a birthday without a year too (2000 is a leap year).
    let check_year = year.unwrap_or(2000);
    chrono::NaiveDate::from_ymd_opt(check_year, month, day)?;
    Some((year, month, day))
}

/// What a cell a spreadsheet would run as a formula starts with.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as exported: one that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a
/// leading apostrophe, which spreadsheets show as text (OWASP "CSV
/// injection"). A negative number stays a number.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(FORMULA_STARTS);
    let number = cell.parse::<f64>().is_ok();
    if risky && !number { Cow::Owned(format!("'{cell}")) } else { Cow::Borrowed(cell) }
}

/// A cell as it was before [`neutralise`]: a file we wrote (the refused
/// rows, an export) comes back with its cells as they were.
pub fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// Appends `cells` as one CSV line (RFC 4180: quoted where needed, CRLF),
/// each cell neutralised.
pub fn write_csv_row(cells: &[&str], out: &mut Vec<u8>) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_csv_cell(cell, out);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `cell` as a CSV cell: neutralised, quoted where needed.
pub fn push_csv_cell(cell: &str, out: &mut Vec<u8>) {
    let cell = neutralise(cell);
    if cell.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        for part in cell.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn mapped(suggestions: &[Suggestion]) -> Vec<Option<Field>> {
        suggestions.iter().map(|s| s.field.clone()).collect()
    }

    #[test]
    fn uploads_are_told_apart_by_their_first_bytes() {
        assert_eq!(sniff(b"PK\x03\x04\x14\x00"), FileKind::Xlsx);
        assert_eq!(sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00"), FileKind::Encrypted);
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\x00"), FileKind::Binary);
        assert_eq!(sniff("姓名,手机\n张三,13800138000\n".as_bytes()), FileKind::Csv);
    }

    #[test]
    fn gbk_and_utf8_with_or_without_a_bom_decode_to_the_same_text() {
        let text = "客户名,手机,邮箱\n张三,13800138000,zhang@example.com\n";
        let (gbk, _, unmappable) = GB18030.encode(text);
        assert!(!unmappable);
        let bom = [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat();
        for (bytes, encoding) in [(gbk.to_vec(), Encoding::Gb18030), (bom, Encoding::Utf8), (text.as_bytes().to_vec(), Encoding::Utf8)] {
            assert_eq!(detect(&bytes, true), encoding);
            // Streamed in chunks of 3 bytes: characters cut between chunks are finished by the next.
            let mut decoder = TextDecoder::new(encoding);
            let mut out = String::new();
            let chunks: Vec<&[u8]> = bytes.chunks(3).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                decoder.decode(chunk, i == chunks.len() - 1, &mut out).unwrap();
            }
            assert_eq!(out, text, "{encoding:?}");
        }
        // A UTF-8 head cut inside a character is still UTF-8 when more follows.
        assert_eq!(detect(&"客户".as_bytes()[..4], false), Encoding::Utf8);
        assert_eq!(detect(&"客户".as_bytes()[..4], true), Encoding::Gb18030);
        assert_eq!(
            (Encoding::parse("gbk"), Encoding::parse("UTF-8"), Encoding::parse("latin1")),
            (Some(Encoding::Gb18030), Some(Encoding::Utf8), None)
        );
    }

    #[test]
    fn bytes_that_are_not_text_are_refused_with_their_offset_not_replaced() {
        let mut decoder = TextDecoder::new(Encoding::Utf8);
        let mut out = String::new();
        let err = decoder.decode(b"ok,\xff\xfe", true, &mut out).unwrap_err();
        assert_eq!(err, NotText { offset: 3, encoding: "UTF-8" });
    }

    #[test]
    fn headers_in_chinese_and_english_are_recognised_with_their_confidence() {
        let found = suggest(&headers(&["客户名", "手机号：", "E-mail", "公司/单位", "职位", "出生日期", "标签", "Remark", "联系电话"]));
        assert_eq!(
            mapped(&found),
            [
                Some(Field::DisplayName),
                Some(Field::Phone),
                Some(Field::Email),
                Some(Field::Company),
                Some(Field::JobTitle),
                Some(Field::Birthday),
                Some(Field::Tags),
                None,
                Some(Field::Phone),
            ]
        );
        assert_eq!(found[0].confidence, 1.0);
        assert_eq!(found[3].confidence, 0.6, "公司/单位 contains a name of the company field");
        assert_eq!((found[7].field.clone(), found[7].confidence), (None, 0.0));
        let english = suggest(&headers(&["First Name", "Last Name", "Email Address", "Mobile", "Job Title", "Zip", "Provider"]));
        assert_eq!(
            mapped(&english),
            [
                Some(Field::GivenName),
                Some(Field::FamilyName),
                Some(Field::Email),
                Some(Field::Phone),
                Some(Field::JobTitle),
                Some(Field::PostalCode),
                None
            ],
            "a short name (\"id\") is not looked for inside others"
        );
    }

    #[test]
    fn a_single_field_goes_to_its_most_confident_column_only() {
        // "姓名" is exactly a display name; "客户名称备注" only contains one.
        let found = suggest(&headers(&["客户名称备注", "姓名"]));
        assert_eq!(mapped(&found), [None, Some(Field::DisplayName)]);
        // Two exact ones: the first keeps it.
        assert_eq!(mapped(&suggest(&headers(&["Name", "名称"]))), [Some(Field::DisplayName), None]);
    }

    #[test]
    fn tags_and_birthdays_are_read_as_spreadsheets_write_them() {
        assert_eq!(split_tags("vip, 老客户、团购；gold|"), ["vip", "老客户", "团购", "gold"]);
        assert!(split_tags(" ,， ").is_empty());
        for (cell, expected) in [
            ("1990-03-02", Some((Some(1990), 3, 2))),
            ("1990/3/2", Some((Some(1990), 3, 2))),
            ("1990.03.02", Some((Some(1990), 3, 2))),
            ("19900302", Some((Some(1990), 3, 2))),
            ("1990年3月2日", Some((Some(1990), 3, 2))),
            ("3月2日", Some((None, 3, 2))),
            ("02-29", Some((None, 2, 29))),
            ("1991-02-29", None),
            ("13/45", None),
            ("soon", None),
        ] {
            assert_eq!(parse_birthday(cell), expected, "{cell}");
        }
    }

    #[test]
    fn records_stream_in_with_quotes_and_line_breaks_cut_between_chunks() {
        let text = "姓名,备注,手机\n张三,\"说 \"\"你好\"\", 再见\",13800138000\n\n李四,\"两行\n备注\",13900139000\n王五,,";
        for size in [1, 2, 5, 1000] {
            let mut splitter = RecordSplitter::new(b',');
            let chars: Vec<char> = text.chars().collect();
            let chunks: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
            let mut records = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                records.extend(splitter.feed(chunk, i == chunks.len() - 1));
            }
            let seen: Vec<(u64, Vec<&str>)> = records.iter().map(|r| (r.number, r.cells.iter().map(String::as_str).collect())).collect();
            assert_eq!(
                seen,
                [
                    (1, vec!["姓名", "备注", "手机"]),
                    (2, vec!["张三", "说 \"你好\", 再见", "13800138000"]),
                    (3, vec!["李四", "两行\n备注", "13900139000"]),
                    (4, vec!["王五", "", ""]),
                ],
                "chunks of {size}"
            );
        }
        // An empty chunk before the end ends nothing.
        let mut splitter = RecordSplitter::new(b';');
        assert!(splitter.feed("a;b", false).is_empty());
        assert!(splitter.feed("", false).is_empty());
        assert_eq!(splitter.feed("", true), [Record { number: 1, cells: vec!["a".into(), "b".into()] }]);
    }

    #[test]
    fn the_delimiter_is_the_most_frequent_outside_quotes() {
        assert_eq!(detect_delimiter("姓名,手机,邮箱\n"), b',');
        assert_eq!(detect_delimiter("Name;Phone;\"a,b,c\"\n"), b';');
        assert_eq!(detect_delimiter("Name\tPhone\n1,2,3,4"), b'\t');
        assert_eq!(detect_delimiter("Name"), b',');
    }

    #[test]
    fn national_phone_numbers_get_the_calling_code() {
        assert_eq!(international("13800138000", "86"), "+8613800138000");
        assert_eq!(international("021-5000 0000", "86"), "+8621-5000 0000");
        assert_eq!(international("0044 20 7946 0000", "86"), "+44 20 7946 0000");
        assert_eq!(international(" +1 555 0100 ", "86"), "+1 555 0100");
        assert_eq!(international("13800138000", ""), "13800138000");
    }

    #[test]
    fn exported_cells_that_would_run_as_formulas_are_neutralised() {
        assert_eq!(neutralise("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(neutralise("+86 138"), "'+86 138");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("-12.5"), "-12.5", "a negative number stays a number");
        assert_eq!(neutralise("张三"), "张三");
    }

    #[test]
    fn every_field_is_read_back_from_its_name() {
        for (field, name) in NAMES {
            assert_eq!(Field::parse(name).as_ref(), Some(field));
            assert_eq!(field.name(), *name);
        }
        assert_eq!(Field::parse("attributes.来源"), Some(Field::Attribute("来源".into())));
        assert_eq!(Field::Attribute("来源".into()).name(), "attributes.来源");
        assert_eq!(Field::parse("attributes. "), None);
        assert_eq!(Field::parse("nickname"), None);
    }

    #[test]
    fn written_rows_split_back_into_the_same_cells() {
        let cells = ["张三", "a,b", "say \"hi\"", "two\nlines", "=1+1", "+86 138 0013 8000"];
        let mut line = Vec::new();
        write_csv_row(&cells, &mut line);
        let line = String::from_utf8(line).unwrap();
        let records = RecordSplitter::new(b',').feed(&line, true);
        let back: Vec<&str> = records[0].cells.iter().map(|c| unneutralise(c)).collect();
        assert_eq!(back, cells);
        assert!(line.contains("'=1+1"), "{line}");
    }
}
