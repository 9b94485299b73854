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
        import::{Field, MatchKey, Mode, Rule, Settings, write_csv_row},
        mask::{self, CellMask},
    },
    resources::IMPORT_JOB,
    store::imports::{ErrorRow, ImportJobRow},
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
        kind: pb::import_job::Kind::Customers as i32,
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
        } as i32,
        conflict_rule: rule_to_proto(s.rule) as i32,
        field_rules: s.field_rules.iter().map(|(field, rule)| (field.clone(), rule_to_proto(*rule) as i32)).collect(),
        calling_code: s.calling_code.clone(),
        dry_run: s.dry_run,
    }
}

fn rule_from_proto(value: i32) -> Option<Rule> {
    match ps::ConflictRule::try_from(value).ok()? {
        ps::ConflictRule::Unspecified | ps::ConflictRule::Overwrite => Some(Rule::Overwrite),
        ps::ConflictRule::Keep => Some(Rule::Keep),
        ps::ConflictRule::FillBlanks => Some(Rule::FillBlanks),
    }
}

/// StartImportJob's settings for `job`, checked against its columns: every
/// problem is a violation naming its field. An empty mapping takes the suggested one.
pub fn settings_from_proto(s: &pb::ImportSettings, job: &ImportJobRow) -> Result<Settings, Error> {
    let mut violations = Vec::new();
    let mut bad = |field: String, reason: &'static str, message: String| violations.push(FieldViolation::new(field, reason, message));
    let mode = match ps::Mode::try_from(s.mode) {
        Ok(ps::Mode::CreateOnly) => Some(Mode::CreateOnly),
        Ok(ps::Mode::Upsert) => Some(Mode::Upsert),
        _ => {
            bad("settings.mode".into(), "MODE_REQUIRED", "MODE_CREATE_ONLY or MODE_UPSERT (dry_run: check without writing)".into());
            None
        }
    };
    let match_key = match ps::MatchKey::try_from(s.match_key) {
        Ok(ps::MatchKey::Unspecified) => MatchKey::None,
        Ok(ps::MatchKey::Email) => MatchKey::Email,
        Ok(ps::MatchKey::Phone) => MatchKey::Phone,
        Ok(ps::MatchKey::ExternalId) => MatchKey::ExternalId,
        Err(_) => {
            bad("settings.match_key".into(), "INVALID_VALUE", "MATCH_KEY_EMAIL, MATCH_KEY_PHONE or MATCH_KEY_EXTERNAL_ID".into());
            MatchKey::None
        }
    };
    let given: Vec<(usize, i32, String)> = if s.mapping.is_empty() {
        job.suggested.0.iter().filter(|(_, f, _)| !f.is_empty()).map(|(c, f, _)| (usize::MAX, *c as i32, f.clone())).collect()
    } else {
        s.mapping.iter().enumerate().map(|(i, m)| (i, m.column, m.field.clone())).collect()
    };
    let mut mapping: Vec<(usize, String)> = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    for (i, column, name) in given {
        let at = |part: &str| if i == usize::MAX { "settings.mapping".to_owned() } else { format!("settings.mapping[{i}].{part}") };
        let Some(column) = usize::try_from(column).ok().filter(|c| *c < job.headers.len()) else {
            bad(at("column"), "OUT_OF_RANGE", format!("a column from 0 to {}", job.headers.len().saturating_sub(1)));
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let Some(field) = Field::parse(&name) else {
            bad(at("field"), "UNKNOWN_FIELD", format!("{name:?} is not a field: see ColumnMapping.field, or use attributes.<name>"));
            continue;
        };
        if mapping.iter().any(|(c, _)| *c == column) {
            bad(at("column"), "DUPLICATE_COLUMN", format!("column {column} is mapped twice"));
            continue;
        }
        if !field.repeats() && fields.contains(&field) {
            bad(at("field"), "DUPLICATE_FIELD", format!("{name} takes one column"));
            continue;
        }
        mapping.push((column, name));
        fields.push(field);
    }
    let names = [Field::DisplayName, Field::GivenName, Field::FamilyName];
    if mode == Some(Mode::CreateOnly) && !fields.iter().any(|f| names.contains(f)) {
        bad(
            "settings.mapping".into(),
            "NAME_NOT_MAPPED",
            "map a column to display_name (or given_name/family_name): every new customer needs a name".into(),
        );
    }
    let key_field = match match_key {
        MatchKey::None => None,
        MatchKey::Email => Some(Field::Email),
        MatchKey::Phone => Some(Field::Phone),
        MatchKey::ExternalId => Some(Field::ExternalId),
    };
    match key_field {
        None if mode == Some(Mode::Upsert) => {
            bad("settings.match_key".into(), "MATCH_KEY_REQUIRED", "an upsert matches rows by email, phone or external id".into())
        }
        Some(field) if !fields.contains(&field) => {
            bad("settings.match_key".into(), "MATCH_KEY_NOT_MAPPED", format!("map a column to {} to match by it", field.name()))
        }
        _ => {}
    }
    let rule = rule_from_proto(s.conflict_rule).unwrap_or_else(|| {
        bad("settings.conflict_rule".into(), "INVALID_VALUE", "OVERWRITE, KEEP or FILL_BLANKS".into());
        Rule::Overwrite
    });
    let mut field_rules = BTreeMap::new();
    for (name, value) in &s.field_rules {
        let at = format!("settings.field_rules[{name}]");
        if name != "attributes" && Field::parse(name).is_none() {
            bad(at.clone(), "UNKNOWN_FIELD", format!("{name:?} is not a field"));
        }
        match rule_from_proto(*value) {
            Some(rule) => {
                field_rules.insert(name.clone(), rule);
            }
            None => bad(at, "INVALID_VALUE", "OVERWRITE, KEEP or FILL_BLANKS".into()),
        }
    }
    let calling_code = s.calling_code.trim_start_matches('+').to_owned();
    if !calling_code.is_empty() && (calling_code.len() > 3 || !calling_code.bytes().all(|b| b.is_ascii_digit())) {
        bad("settings.calling_code".into(), "INVALID_CALLING_CODE", "1 to 3 digits, e.g. 86".into());
    }
    match mode {
        Some(mode) if violations.is_empty() => {
            Ok(Settings { mapping, mode, match_key, rule, field_rules, calling_code, dry_run: s.dry_run, started_by: String::new() })
        }
        _ => Err(Error::InvalidArgument { violations }),
    }
}

/// The field each column of `job` was mapped to in its current run.
fn column_fields(job: &ImportJobRow) -> Vec<Option<Field>> {
    let mut fields = vec![None; job.headers.len()];
    for (column, name) in job.settings.iter().flat_map(|s| s.0.mapping.iter()) {
        if let Some(slot) = fields.get_mut(*column) {
            *slot = Field::parse(name);
        }
    }
    fields
}

/// A personal cell as a caller without `pii` sees it.
fn masked(field: &Field, cell: &str) -> String {
    let how = match field {
        Field::Email => CellMask::Email,
        Field::Phone => CellMask::Phone,
        _ => CellMask::Initial,
    };
    mask::cell(cell, how)
}

/// The cells of a refused row as the caller may see them.
fn shown_cells(row: &ErrorRow, fields: &[Option<Field>], pii: bool) -> Vec<String> {
    row.cells
        .0
        .iter()
        .enumerate()
        .map(|(i, cell)| match fields.get(i).and_then(|f| f.as_ref()) {
            _ if pii => cell.clone(),
            Some(field) if !field.personal() && !matches!(field, Field::Attribute(_)) => cell.clone(),
            // A column mapped to personal data, to a custom attribute, or to nothing may hold anything.
            Some(field) => masked(field, cell),
            None => masked(&Field::DisplayName, cell),
        })
        .collect()
}

/// Refused rows as the API shows them; `pii`: the caller sees personal cells unmasked.
pub fn errors_to_proto(job: &ImportJobRow, rows: &[ErrorRow], pii: bool) -> Vec<pb::ImportError> {
    let fields = column_fields(job);
    rows.iter()
        .map(|row| {
            let cells = shown_cells(row, &fields, pii);
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
    let fields = column_fields(job);
    let mut out = Vec::new();
    for row in rows {
        let mut cells = shown_cells(row, &fields, pii);
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
