//! Import jobs between the API and the app: a stored job as an `ImportJob`
//! with its progress, StartImportJob's settings checked against the file's
//! columns, refused rows as `ImportError`s (cells masked for callers without
//! `pii`) and as the lines of the downloadable CSV.

use std::collections::BTreeMap;

use chrono::Utc;
use crm_kit::{Error, error::FieldViolation, time::to_timestamp};
use crm_proto::crm::profiles::v1::{self as pb, import_job::State, import_settings as ps};

use crate::{
    domain::{
        import::{Field, Kind, MatchKey, Mode, Rule, Settings, write_csv_row},
        mask::{self, CellMask},
        occupancy_import::OccupancyField,
        related_person_import::PersonField,
        transaction_import::{ITEM_FIELDS, TransactionField},
    },
    resources::IMPORT_JOB,
    store::imports::{ErrorRow, ImportJobRow},
    wire::customer_ref::CustomerField,
};

/// A stored job as the API shows it.
pub fn job_to_proto(job: &ImportJobRow) -> pb::ImportJob {
    let state = match job.state.as_str() {
        "UPLOADED" => State::Uploaded,
        "RUNNING" => State::Running,
        "SUCCEEDED" => State::Succeeded,
        "FAILED" => State::Failed,
        "CANCELLED" => State::Cancelled,
        _ => State::Unspecified,
    };
    let percent = match (job.total_rows, job.state.as_str()) {
        (0, "SUCCEEDED") => 100.0,
        (0, _) => 0.0,
        (total, _) => (job.rows_read as f64 * 100.0 / total as f64).min(100.0),
    };
    let seconds = job.start_time.map(|start| (job.end_time.unwrap_or_else(Utc::now) - start).num_milliseconds() as f64 / 1000.0);
    let rows_per_second = match seconds {
        Some(s) if s > 0.0 => job.rows_read as f64 / s,
        _ => 0.0,
    };
    pb::ImportJob {
        name: IMPORT_JOB.name(job.id),
        kind: match Kind::parse(&job.kind) {
            Kind::Customers => pb::import_job::Kind::Customers,
            Kind::Transactions => pb::import_job::Kind::Transactions,
            Kind::RelatedPersons => pb::import_job::Kind::RelatedPersons,
            Kind::Occupancies => pb::import_job::Kind::Occupancies,
        } as i32,
        file_name: job.file_name.clone(),
        format: job.format.clone(),
        encoding: job.encoding.clone(),
        delimiter: job.delimiter.clone(),
        sheet: job.sheet.clone(),
        size_bytes: job.size_bytes,
        sha256: job.sha256.clone(),
        total_rows: job.total_rows,
        headers: job.headers.clone(),
        suggested_mapping: job
            .suggested
            .0
            .iter()
            .map(|(column, field, confidence)| pb::ColumnMapping {
                column: i32::try_from(*column).unwrap_or(i32::MAX),
                header: job.headers.get(*column).cloned().unwrap_or_default(),
                field: field.clone(),
                confidence: *confidence,
            })
            .collect(),
        state: state as i32,
        settings: job.settings.as_ref().map(|s| settings_to_proto(&s.0, &job.headers)),
        progress: Some(pb::ImportProgress {
            rows_read: job.rows_read,
            rows_valid: job.rows_valid,
            rows_failed: job.rows_failed,
            rows_created: job.rows_created,
            rows_updated: job.rows_updated,
            percent,
            rows_per_second,
        }),
        failure_message: job.failure_message.clone(),
        actor: job.actor.clone(),
        request_id: job.request_id.clone(),
        create_time: Some(to_timestamp(job.create_time)),
        start_time: job.start_time.map(to_timestamp),
        end_time: job.end_time.map(to_timestamp),
        purge_time: job.purge_time.map(to_timestamp),
    }
}

fn rule_to_proto(rule: Rule) -> ps::ConflictRule {
    match rule {
        Rule::Overwrite => ps::ConflictRule::Overwrite,
        Rule::Keep => ps::ConflictRule::Keep,
        Rule::FillBlanks => ps::ConflictRule::FillBlanks,
    }
}

fn settings_to_proto(s: &Settings, headers: &[String]) -> pb::ImportSettings {
    pb::ImportSettings {
        mapping: s
            .mapping
            .iter()
            .map(|(column, field)| pb::ColumnMapping {
                column: i32::try_from(*column).unwrap_or(i32::MAX),
                header: headers.get(*column).cloned().unwrap_or_default(),
                field: field.clone(),
                confidence: 0.0,
            })
            .collect(),
        mode: match s.mode {
            Mode::CreateOnly => ps::Mode::CreateOnly,
            Mode::Upsert => ps::Mode::Upsert,
        } as i32,
        match_key: match s.match_key {
            MatchKey::None => ps::MatchKey::Unspecified,
            MatchKey::Email => ps::MatchKey::Email,
            MatchKey::Phone => ps::MatchKey::Phone,
            MatchKey::ExternalId => ps::MatchKey::ExternalId,
            MatchKey::Duplicates => ps::MatchKey::Duplicates,
        } as i32,
        conflict_rule: rule_to_proto(s.rule) as i32,
        field_rules: s.field_rules.iter().map(|(field, rule)| (field.clone(), rule_to_proto(*rule) as i32)).collect(),
        calling_code: s.calling_code.clone(),
        dry_run: s.dry_run,
        time_zone: s.time_zone.clone(),
        currency_code: s.currency_code.clone(),
    }
}

fn rule_from_proto(value: i32) -> Option<Rule> {
    match ps::ConflictRule::try_from(value).ok()? {
        ps::ConflictRule::Unspecified | ps::ConflictRule::Overwrite => Some(Rule::Overwrite),
        ps::ConflictRule::Keep => Some(Rule::Keep),
        ps::ConflictRule::FillBlanks => Some(Rule::FillBlanks),
    }
}

/// The violations found in StartImportJob's settings.
#[derive(Default)]
struct Found(Vec<FieldViolation>);

impl Found {
    fn bad(&mut self, field: impl Into<String>, reason: &'static str, message: impl Into<String>) {
        self.0.push(FieldViolation::new(field.into(), reason, message.into()));
    }
}

/// StartImportJob's settings for `job`, checked against its kind and its
/// columns: every problem is a violation naming its field. An empty mapping
/// takes the suggested one.
pub fn settings_from_proto(s: &pb::ImportSettings, job: &ImportJobRow) -> Result<Settings, Error> {
    let mut found = Found::default();
    let settings = match Kind::parse(&job.kind) {
        Kind::Customers => customer_settings(s, job, &mut found),
        Kind::Transactions => transaction_settings(s, job, &mut found),
        Kind::RelatedPersons => person_settings(s, job, &mut found),
        Kind::Occupancies => occupancy_settings(s, job, &mut found),
    };
    let calling_code = s.calling_code.trim_start_matches('+').to_owned();
    if !calling_code.is_empty() && (calling_code.len() > 3 || !calling_code.bytes().all(|b| b.is_ascii_digit())) {
        found.bad("settings.calling_code", "INVALID_CALLING_CODE", "1 to 3 digits, e.g. 86");
    }
    match settings {
        Some(settings) if found.0.is_empty() => Ok(Settings { calling_code, dry_run: s.dry_run, ..settings }),
        _ => Err(Error::InvalidArgument { violations: found.0 }),
    }
}

/// The mapping asked for (or the suggested one): (column, field name) and
/// the fields, each column once and a field that takes one column once.
fn mapping_of<F: PartialEq>(
    s: &pb::ImportSettings,
    job: &ImportJobRow,
    found: &mut Found,
    parse: impl Fn(&str) -> Option<F>,
    repeats: impl Fn(&F) -> bool,
) -> (Vec<(usize, String)>, Vec<F>) {
    let given: Vec<(usize, i32, String)> = if s.mapping.is_empty() {
        job.suggested.0.iter().filter(|(_, f, _)| !f.is_empty()).map(|(c, f, _)| (usize::MAX, *c as i32, f.clone())).collect()
    } else {
        s.mapping.iter().enumerate().map(|(i, m)| (i, m.column, m.field.clone())).collect()
    };
    let mut mapping: Vec<(usize, String)> = Vec::new();
    let mut fields: Vec<F> = Vec::new();
    for (i, column, name) in given {
        let at = |part: &str| if i == usize::MAX { "settings.mapping".to_owned() } else { format!("settings.mapping[{i}].{part}") };
        let Some(column) = usize::try_from(column).ok().filter(|c| *c < job.headers.len()) else {
            found.bad(at("column"), "OUT_OF_RANGE", format!("a column from 0 to {}", job.headers.len().saturating_sub(1)));
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let Some(field) = parse(&name) else {
            found.bad(at("field"), "UNKNOWN_FIELD", format!("{name:?} is not a field of this job's kind: see ColumnMapping.field"));
            continue;
        };
        if mapping.iter().any(|(c, _)| *c == column) {
            found.bad(at("column"), "DUPLICATE_COLUMN", format!("column {column} is mapped twice"));
            continue;
        }
        if !repeats(&field) && fields.contains(&field) {
            found.bad(at("field"), "DUPLICATE_FIELD", format!("{name} takes one column"));
            continue;
        }
        mapping.push((column, name));
        fields.push(field);
    }
    (mapping, fields)
}

/// The settings of a customers job.
fn customer_settings(s: &pb::ImportSettings, job: &ImportJobRow, found: &mut Found) -> Option<Settings> {
    let mode = match ps::Mode::try_from(s.mode) {
        Ok(ps::Mode::CreateOnly) => Some(Mode::CreateOnly),
        Ok(ps::Mode::Upsert) => Some(Mode::Upsert),
        _ => {
            found.bad("settings.mode", "MODE_REQUIRED", "MODE_CREATE_ONLY or MODE_UPSERT (dry_run: check without writing)");
            None
        }
    };
    let match_key = match ps::MatchKey::try_from(s.match_key) {
        Ok(ps::MatchKey::Unspecified) => MatchKey::None,
        Ok(ps::MatchKey::Email) => MatchKey::Email,
        Ok(ps::MatchKey::Phone) => MatchKey::Phone,
        Ok(ps::MatchKey::ExternalId) => MatchKey::ExternalId,
        Ok(ps::MatchKey::Duplicates) => MatchKey::Duplicates,
        Err(_) => {
            found.bad(
                "settings.match_key",
                "INVALID_VALUE",
                "MATCH_KEY_EMAIL, MATCH_KEY_PHONE, MATCH_KEY_EXTERNAL_ID or MATCH_KEY_DUPLICATES",
            );
            MatchKey::None
        }
    };
    let (mapping, fields) = mapping_of(s, job, found, Field::parse, Field::repeats);
    let names = [Field::DisplayName, Field::GivenName, Field::FamilyName];
    if mode == Some(Mode::CreateOnly) && !fields.iter().any(|f| names.contains(f)) {
        found.bad(
            "settings.mapping",
            "NAME_NOT_MAPPED",
            "map a column to display_name (or given_name/family_name): every new customer needs a name",
        );
    }
    let key_field = match match_key {
        // The matcher reads whatever names, emails, phones and company are mapped.
        MatchKey::None | MatchKey::Duplicates => None,
        MatchKey::Email => Some(Field::Email),
        MatchKey::Phone => Some(Field::Phone),
        MatchKey::ExternalId => Some(Field::ExternalId),
    };
    match key_field {
        None if mode == Some(Mode::Upsert) && match_key == MatchKey::None => found.bad(
            "settings.match_key",
            "MATCH_KEY_REQUIRED",
            "an upsert matches rows by email, phone, external id or the duplicate matcher",
        ),
        Some(field) if !fields.contains(&field) => {
            found.bad("settings.match_key", "MATCH_KEY_NOT_MAPPED", format!("map a column to {} to match by it", field.name()))
        }
        _ => {}
    }
    let rule = rule_from_proto(s.conflict_rule).unwrap_or_else(|| {
        found.bad("settings.conflict_rule", "INVALID_VALUE", "OVERWRITE, KEEP or FILL_BLANKS");
        Rule::Overwrite
    });
    let mut field_rules = BTreeMap::new();
    for (name, value) in &s.field_rules {
        let at = format!("settings.field_rules[{name}]");
        if name != "attributes" && Field::parse(name).is_none() {
            found.bad(at.clone(), "UNKNOWN_FIELD", format!("{name:?} is not a field"));
        }
        match rule_from_proto(*value) {
            Some(rule) => {
                field_rules.insert(name.clone(), rule);
            }
            None => found.bad(at, "INVALID_VALUE", "OVERWRITE, KEEP or FILL_BLANKS"),
        }
    }
    no_transaction_settings(s, found);
    Some(Settings {
        mapping,
        mode: mode?,
        match_key,
        rule,
        field_rules,
        calling_code: String::new(),
        dry_run: false,
        started_by: String::new(),
        time_zone: String::new(),
        currency_code: String::new(),
    })
}

/// What every kind but customers shares: records added once (CREATE_ONLY;
/// one stored already is skipped), no match key or conflict rules, whose by
/// exactly one customer column (`is_customer`). The mapping and its fields.
fn archive_mapping<F: PartialEq + Copy>(
    s: &pb::ImportSettings,
    job: &ImportJobRow,
    found: &mut Found,
    parse: impl Fn(&str) -> Option<F>,
    repeats: impl Fn(&F) -> bool,
    is_customer: impl Fn(F) -> bool,
) -> (Vec<(usize, String)>, Vec<F>) {
    match ps::Mode::try_from(s.mode) {
        Ok(ps::Mode::CreateOnly) => {}
        Ok(ps::Mode::Upsert) => found.bad(
            "settings.mode",
            "MODE_NOT_SUPPORTED",
            "these records are added once: MODE_CREATE_ONLY (a row stored already is skipped)",
        ),
        _ => found.bad("settings.mode", "MODE_REQUIRED", "MODE_CREATE_ONLY (dry_run: check without writing)"),
    }
    if s.match_key != ps::MatchKey::Unspecified as i32 {
        found.bad(
            "settings.match_key",
            "NOT_FOR_THIS_KIND",
            "a customer column says whose a row is: map customer, customer_email, customer_phone or customer_external_id",
        );
    }
    if !s.field_rules.is_empty() || s.conflict_rule != ps::ConflictRule::Unspecified as i32 {
        found.bad(
            "settings.field_rules",
            "NOT_FOR_THIS_KIND",
            "these records are never updated by an import: conflict rules are for customers",
        );
    }
    let (mapping, fields) = mapping_of(s, job, found, parse, repeats);
    match fields.iter().filter(|f| is_customer(**f)).count() {
        1 => {}
        0 => found.bad(
            "settings.mapping",
            "CUSTOMER_NOT_MAPPED",
            "map one column to customer, customer_email, customer_phone or customer_external_id",
        ),
        _ => found.bad("settings.mapping", "CUSTOMER_MAPPED_TWICE", "map one column only to say whose a row is"),
    }
    (mapping, fields)
}

/// `names` of fields each needing a column; FIELD_NOT_MAPPED for those `fields` lack.
fn require<F: PartialEq + Copy>(found: &mut Found, fields: &[F], needed: &[(F, &str)]) {
    for (field, name) in needed {
        if !fields.contains(field) {
            found.bad("settings.mapping", "FIELD_NOT_MAPPED", format!("map a column to {name}: every row needs one"));
        }
    }
}

/// Refuses the transactions-only settings on another kind.
fn no_transaction_settings(s: &pb::ImportSettings, found: &mut Found) {
    for (field, value) in [("settings.time_zone", &s.time_zone), ("settings.currency_code", &s.currency_code)] {
        if !value.is_empty() {
            found.bad(field, "NOT_FOR_THIS_KIND", "only a transactions import reads it");
        }
    }
}

/// Settings of a kind created once each, with the mapping given.
fn added_once(mapping: Vec<(usize, String)>, time_zone: String, currency_code: String) -> Settings {
    Settings {
        mapping,
        mode: Mode::CreateOnly,
        match_key: MatchKey::None,
        rule: Rule::Overwrite,
        field_rules: BTreeMap::new(),
        calling_code: String::new(),
        dry_run: false,
        started_by: String::new(),
        time_zone,
        currency_code,
    }
}

/// The settings of a related-persons job: whose, a name and a relation mapped.
fn person_settings(s: &pb::ImportSettings, job: &ImportJobRow, found: &mut Found) -> Option<Settings> {
    let (mapping, fields) = archive_mapping(s, job, found, PersonField::parse, |f| f.repeats(), |f| f.customer_column().is_some());
    require(found, &fields, &[(PersonField::DisplayName, "display_name"), (PersonField::Relation, "relation")]);
    no_transaction_settings(s, found);
    Some(added_once(mapping, String::new(), String::new()))
}

/// The settings of an occupancies job: the premises (by name or unit code), whose, the role and a date mapped.
fn occupancy_settings(s: &pb::ImportSettings, job: &ImportJobRow, found: &mut Found) -> Option<Settings> {
    let (mapping, fields) = archive_mapping(s, job, found, OccupancyField::parse, |_| false, |f| f.customer_column().is_some());
    match (fields.contains(&OccupancyField::Premises), fields.contains(&OccupancyField::UnitCode)) {
        (true, false) | (false, true) => {}
        (false, false) => found.bad("settings.mapping", "PREMISES_NOT_MAPPED", "map a column to premises or to unit_code"),
        (true, true) => found.bad("settings.mapping", "PREMISES_MAPPED_TWICE", "map premises or unit_code, not both"),
    }
    require(found, &fields, &[(OccupancyField::Role, "role")]);
    if !fields.contains(&OccupancyField::MoveInDate) && !fields.contains(&OccupancyField::MoveOutDate) {
        found.bad("settings.mapping", "FIELD_NOT_MAPPED", "map a column to move_in_date, move_out_date or both");
    }
    no_transaction_settings(s, found);
    Some(added_once(mapping, String::new(), String::new()))
}

/// The settings of a transactions job: whose, and the fields a transaction needs, mapped.
fn transaction_settings(s: &pb::ImportSettings, job: &ImportJobRow, found: &mut Found) -> Option<Settings> {
    let (mapping, fields) = archive_mapping(s, job, found, TransactionField::parse, |_| false, |f| f.customer_column().is_some());
    require(
        found,
        &fields,
        &[(TransactionField::ExternalId, "external_id"), (TransactionField::Amount, "amount"), (TransactionField::OccurTime, "occur_time")],
    );
    let items_by_row = fields.iter().any(|f| ITEM_FIELDS.contains(f));
    if items_by_row && fields.contains(&TransactionField::LineItems) {
        found.bad(
            "settings.mapping",
            "ITEMS_MAPPED_TWICE",
            "map line_items, or product/sku/quantity/unit_price (one item per row), not both",
        );
    }
    if items_by_row && !fields.contains(&TransactionField::Product) {
        found.bad("settings.mapping", "FIELD_NOT_MAPPED", "map a column to product: an item needs one");
    }
    let currency_code = s.currency_code.trim().to_uppercase();
    if !currency_code.is_empty() && crm_kit::money::exponent(&currency_code).is_none() {
        found.bad("settings.currency_code", "INVALID_CURRENCY", "an ISO 4217 code with minor units, e.g. CNY");
    }
    if currency_code.is_empty() && !fields.contains(&TransactionField::CurrencyCode) {
        found.bad("settings.currency_code", "CURRENCY_REQUIRED", "map a currency_code column, or give the currency of every row here");
    }
    let time_zone = s.time_zone.trim().to_owned();
    if !time_zone.is_empty() && time_zone.parse::<chrono_tz::Tz>().is_err() {
        found.bad("settings.time_zone", "INVALID_TIME_ZONE", "an IANA time zone, e.g. Asia/Shanghai");
    }
    Some(added_once(mapping, time_zone, currency_code))
}

/// How each column of `job` (as mapped in its current run) is shown to a
/// caller without `pii`: None as it is, else masked so.
fn column_masks(job: &ImportJobRow) -> Vec<Option<CellMask>> {
    // A column mapped to nothing may hold anything.
    let mut masks = vec![Some(CellMask::Initial); job.headers.len()];
    let kind = Kind::parse(&job.kind);
    for (column, name) in job.settings.iter().flat_map(|s| s.0.mapping.iter()) {
        let Some(slot) = masks.get_mut(*column) else { continue };
        *slot = match kind {
            Kind::Customers => match Field::parse(name) {
                Some(Field::Email) => Some(CellMask::Email),
                Some(Field::Phone) => Some(CellMask::Phone),
                // A custom attribute may hold anything.
                Some(field) if field.personal() || matches!(field, Field::Attribute(_)) => Some(CellMask::Initial),
                Some(_) => None,
                None => Some(CellMask::Initial),
            },
            Kind::Transactions => match TransactionField::parse(name) {
                Some(TransactionField::CustomerEmail) => Some(CellMask::Email),
                Some(TransactionField::CustomerPhone) => Some(CellMask::Phone),
                Some(_) => None,
                None => Some(CellMask::Initial),
            },
            Kind::RelatedPersons => match PersonField::parse(name) {
                Some(PersonField::CustomerEmail | PersonField::Email) => Some(CellMask::Email),
                Some(PersonField::CustomerPhone | PersonField::Phone) => Some(CellMask::Phone),
                Some(field) if field.personal() => Some(CellMask::Initial),
                Some(_) => None,
                None => Some(CellMask::Initial),
            },
            Kind::Occupancies => match OccupancyField::parse(name) {
                Some(OccupancyField::CustomerEmail) => Some(CellMask::Email),
                Some(OccupancyField::CustomerPhone) => Some(CellMask::Phone),
                Some(_) => None,
                None => Some(CellMask::Initial),
            },
        };
    }
    masks
}

/// The cells of a refused row as the caller may see them.
fn shown_cells(row: &ErrorRow, masks: &[Option<CellMask>], pii: bool) -> Vec<String> {
    row.cells
        .0
        .iter()
        .enumerate()
        .map(|(i, cell)| match masks.get(i).copied().unwrap_or(Some(CellMask::Initial)) {
            Some(how) if !pii => mask::cell(cell, how),
            _ => cell.clone(),
        })
        .collect()
}

/// Refused rows as the API shows them; `pii`: the caller sees personal cells unmasked.
pub fn errors_to_proto(job: &ImportJobRow, rows: &[ErrorRow], pii: bool) -> Vec<pb::ImportError> {
    let masks = column_masks(job);
    rows.iter()
        .map(|row| {
            let cells = shown_cells(row, &masks, pii);
            pb::ImportError {
                row: row.row_number,
                problems: row
                    .problems
                    .0
                    .iter()
                    .map(|p| pb::ImportProblem {
                        column: p.column.and_then(|c| i32::try_from(c).ok()).unwrap_or(-1),
                        header: p.column.and_then(|c| job.headers.get(c)).cloned().unwrap_or_default(),
                        field: p.field.clone(),
                        value: p.column.and_then(|c| cells.get(c)).cloned().unwrap_or_default(),
                        reason: p.reason.clone(),
                        message: p.message.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The refused rows' CSV header: the file's headers and a column saying what is wrong.
pub fn errors_csv_header(job: &ImportJobRow) -> Vec<u8> {
    let mut line = "\u{feff}".as_bytes().to_vec();
    let mut cells: Vec<&str> = job.headers.iter().map(String::as_str).collect();
    cells.push("错误 / Error");
    write_csv_row(&cells, &mut line);
    line
}

/// Refused rows as lines of the CSV: their cells (masked without `pii`,
/// neutralised against formulas) and what is wrong with them.
pub fn errors_csv_lines(job: &ImportJobRow, rows: &[ErrorRow], pii: bool) -> Vec<u8> {
    let masks = column_masks(job);
    let mut out = Vec::new();
    for row in rows {
        let mut cells = shown_cells(row, &masks, pii);
        cells.resize(job.headers.len(), String::new());
        let problems: Vec<String> = row
            .problems
            .0
            .iter()
            .map(|p| match p.column.and_then(|c| job.headers.get(c)) {
                Some(header) => format!("{header}: {} ({})", p.message, p.reason),
                None => format!("{}: {} ({})", p.field, p.message, p.reason),
            })
            .collect();
        cells.push(problems.join("; "));
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        write_csv_row(&cells, &mut out);
    }
    out
}
