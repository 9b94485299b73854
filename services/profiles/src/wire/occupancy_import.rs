//! A spreadsheet row, through its column correspondence, into a move: which
//! premises (by resource name or unit code), whose (the customer column),
//! the role, and a move-in (with a move-out for a past stay) or a move-out.
//! What the move does is judged in the batch, against the premises' history.

use uuid::Uuid;

use super::{
    customer_ref::{CustomerColumn, CustomerField, CustomerRef, Sheet, blank_customer, customer_field, read_customer_ref},
    import::RowProblem,
};
use crate::{
    domain::{
        import::unneutralise,
        occupancy_import::{Move, OccupancyField, parse_date, parse_role},
    },
    resources::PREMISES,
};

/// How a sheet of occupancies is read.
pub type OccupancySheet = Sheet<OccupancyField>;

customer_field!(OccupancyField);

/// Which premises a row is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PremisesRef {
    Name(Uuid),
    UnitCode(String),
}

/// A move read from a row: which premises, whose, the role and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMove {
    pub premises: PremisesRef,
    pub customer: CustomerRef,
    pub role: &'static str,
    pub happened: Move,
}

/// An occupancy row read alone: its move, or every problem of the row.
pub type RowOccupancy = Result<RowMove, Vec<RowProblem>>;

/// The occupancy row `cells` describes on `sheet`.
pub fn read_occupancy_row(cells: &[&str], sheet: &OccupancySheet) -> RowOccupancy {
    let (mut premises, mut customer, mut role, mut move_in, mut move_out) = (None, None, None, None, None);
    let mut problems = Vec::new();
    for (column, field) in &sheet.mapping {
        let (column, field) = (*column, *field);
        let Some(cell) = cells.get(column).map(|c| unneutralise(c.trim()).trim()).filter(|c| !c.is_empty()) else { continue };
        let mut bad = |reason: &'static str, message: &str| {
            problems.push(RowProblem { column: Some(column), field: field.name().to_owned(), reason, message: message.to_owned() })
        };
        match field {
            OccupancyField::Premises => match PREMISES.id_of(cell) {
                Some(id) => premises = Some(PremisesRef::Name(id)),
                None => bad("INVALID_PREMISES", "a premises' resource name, premises/{id}"),
            },
            OccupancyField::UnitCode => premises = Some(PremisesRef::UnitCode(cell.to_owned())),
            OccupancyField::Customer
            | OccupancyField::CustomerEmail
            | OccupancyField::CustomerPhone
            | OccupancyField::CustomerExternalId => {
                let kind = field.customer_column().unwrap_or(CustomerColumn::Name);
                match read_customer_ref(kind, cell, column, &sheet.calling_code) {
                    Ok(r) => customer = Some(r),
                    Err(problem) => problems.push(problem),
                }
            }
            OccupancyField::Role => match parse_role(cell) {
                Some(r) => role = Some(r),
                None => bad("INVALID_ROLE", "owner, tenant or resident (业主/租户/住户)"),
            },
            OccupancyField::MoveInDate | OccupancyField::MoveOutDate => match parse_date(cell) {
                Some(date) if field == OccupancyField::MoveInDate => move_in = Some(date),
                Some(date) => move_out = Some(date),
                None => bad("INVALID_DATE", "a date such as 2026-11-27, 2026/11/27 or 2026年11月27日"),
            },
        }
    }
    let missing = |problems: &mut Vec<RowProblem>, field: OccupancyField, message: &str| {
        if !problems.iter().any(|p| p.field == field.name()) {
            problems.push(RowProblem {
                column: sheet.column_of(field),
                field: field.name().to_owned(),
                reason: "REQUIRED",
                message: message.to_owned(),
            });
        }
    };
    if premises.is_none() {
        let field = if sheet.column_of(OccupancyField::Premises).is_some() { OccupancyField::Premises } else { OccupancyField::UnitCode };
        missing(&mut problems, field, "which premises: the premises column is blank");
    }
    if role.is_none() {
        missing(&mut problems, OccupancyField::Role, "owner, tenant or resident");
    }
    if move_in.is_none() && move_out.is_none() && !problems.iter().any(|p| p.field.starts_with("move_")) {
        let message = "a move-in date (with a move-out date for a past stay), or a move-out date alone";
        missing(&mut problems, OccupancyField::MoveInDate, message);
    }
    let whose = sheet.customer_column();
    if customer.is_none() && !problems.iter().any(|p| p.field.starts_with("customer")) {
        problems.push(blank_customer(whose));
    }
    let happened = match (move_in, move_out) {
        (Some(date), out) => Some(Move::In { date, out }),
        (None, Some(date)) => Some(Move::Out { date }),
        (None, None) => None,
    };
    match (premises, customer, role, happened) {
        (Some(premises), Some(customer), Some(role), Some(happened)) if problems.is_empty() => {
            Ok(RowMove { premises, customer, role, happened })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn a_row_reads_into_its_move_and_its_problems_name_their_columns() {
        use OccupancyField::*;
        let sheet = OccupancySheet {
            mapping: vec![(0, UnitCode), (1, CustomerPhone), (2, Role), (3, MoveInDate), (4, MoveOutDate)],
            calling_code: "86".into(),
        };
        let row = read_occupancy_row(&["A-101", "13800138000", "业主", "2020/1/1", ""], &sheet).unwrap();
        let date = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert_eq!(
            row,
            RowMove {
                premises: PremisesRef::UnitCode("A-101".into()),
                customer: CustomerRef::Phone("+8613800138000".into()),
                role: "OWNER",
                happened: Move::In { date, out: None }
            }
        );
        let out = read_occupancy_row(&["A-101", "13800138000", "tenant", "", "2026-11-01"], &sheet).unwrap();
        assert_eq!(out.happened, Move::Out { date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() });

        let row = read_occupancy_row(&["", "", "guest", "someday", ""], &sheet);
        let found: Vec<(Option<usize>, String, &str)> = row.unwrap_err().into_iter().map(|p| (p.column, p.field, p.reason)).collect();
        assert_eq!(
            found,
            [
                (Some(2), "role".to_owned(), "INVALID_ROLE"),
                (Some(3), "move_in_date".to_owned(), "INVALID_DATE"),
                (Some(0), "unit_code".to_owned(), "REQUIRED"),
                (Some(1), "customer_phone".to_owned(), "REQUIRED"),
            ]
        );
    }
}
