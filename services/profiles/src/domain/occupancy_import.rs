//! The pure half of importing occupancies (bulk move-ins and move-outs,
//! 批量迁入/迁出): the fields a column can fill and their header names in
//! Chinese and English, the roles, and how a file's rows change the history
//! of one role at one premises in file order — what each row does (start a
//! stay, ending the current holder's; end a stay; nothing, when the file
//! says what is stored already), or why it cannot. No I/O.

use chrono::NaiveDate;
use uuid::Uuid;

use super::import::{Suggestion, field_named, name_of, suggest_among};

/// An occupancy field a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OccupancyField {
    /// The premises, by resource name ("premises/{id}").
    Premises,
    /// The premises, by unit code (unique in the tenant).
    UnitCode,
    /// Whose, by resource name ("customers/{id}").
    Customer,
    CustomerEmail,
    CustomerPhone,
    CustomerExternalId,
    Role,
    MoveInDate,
    MoveOutDate,
}

/// The fields, as the API names them.
const NAMES: &[(OccupancyField, &str)] = &[
    (OccupancyField::Premises, "premises"),
    (OccupancyField::UnitCode, "unit_code"),
    (OccupancyField::Customer, "customer"),
    (OccupancyField::CustomerEmail, "customer_email"),
    (OccupancyField::CustomerPhone, "customer_phone"),
    (OccupancyField::CustomerExternalId, "customer_external_id"),
    (OccupancyField::Role, "role"),
    (OccupancyField::MoveInDate, "move_in_date"),
    (OccupancyField::MoveOutDate, "move_out_date"),
];

impl OccupancyField {
    /// The field named `name`; None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        field_named(NAMES, name)
    }

    /// Its name, as [`OccupancyField::parse`] reads it.
    pub fn name(self) -> &'static str {
        name_of(NAMES, &self)
    }
}

/// Header names of each field, normalised (see [`super::import::normalise`]).
const SYNONYMS: &[(OccupancyField, &[&str])] = &[
    (OccupancyField::Premises, &["premises", "premisesresourcename"]),
    (
        OccupancyField::UnitCode,
        &["房号", "房间号", "房屋编号", "房产编号", "单元号", "户号", "unitcode", "unit", "unitno", "room", "roomno"],
    ),
    (OccupancyField::Customer, &["customer"]),
    (OccupancyField::CustomerEmail, &["邮箱", "客户邮箱", "email", "customeremail"]),
    (OccupancyField::CustomerPhone, &["手机", "手机号", "电话", "联系电话", "客户手机", "phone", "mobile", "customerphone"]),
    (OccupancyField::CustomerExternalId, &["客户编号", "业主编号", "会员编号", "customerid", "customerexternalid", "customerno"]),
    (OccupancyField::Role, &["身份", "角色", "类型", "关系", "role", "type"]),
    (
        OccupancyField::MoveInDate,
        &["迁入日期", "入住日期", "迁入时间", "入住时间", "迁入", "入住", "moveindate", "movein", "from", "since"],
    ),
    (OccupancyField::MoveOutDate, &["迁出日期", "搬离日期", "迁出时间", "迁出", "搬离", "moveoutdate", "moveout", "until", "to"]),
];

/// The column correspondence suggested for a sheet of occupancies with `headers`.
pub fn suggest(headers: &[String]) -> Vec<Suggestion<OccupancyField>> {
    suggest_among(headers, SYNONYMS, |_| false)
}

/// The role a cell names: OWNER, TENANT or RESIDENT (any case, with or
/// without "OCCUPANCY_ROLE_"), or 业主/产权人, 租户/承租人, 住户/居住人; None otherwise.
pub fn parse_role(cell: &str) -> Option<&'static str> {
    let upper = cell.trim().to_uppercase();
    Some(match upper.strip_prefix("OCCUPANCY_ROLE_").unwrap_or(&upper) {
        "OWNER" | "业主" | "产权人" | "房主" => "OWNER",
        "TENANT" | "租户" | "承租人" | "租客" => "TENANT",
        "RESIDENT" | "住户" | "居住人" | "居民" => "RESIDENT",
        _ => return None,
    })
}

/// A date as a list writes it: 2026-11-27, 2026/11/27, 2026.11.27,
/// 20261127 or 2026年11月27日; None otherwise.
pub fn parse_date(cell: &str) -> Option<NaiveDate> {
    let cell = cell.trim();
    ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日"].iter().find_map(|f| NaiveDate::parse_from_str(cell, f).ok())
}

/// One stay of a role at a premises: a stored occupancy or one a row starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    pub id: Uuid,
    pub customer: Uuid,
    pub move_in: NaiveDate,
    pub move_out: Option<NaiveDate>,
}

impl Stay {
    /// Whether it covers some day of [from, until) (until None: open).
    fn overlaps(&self, from: NaiveDate, until: Option<NaiveDate>) -> bool {
        let before_end = until.is_none_or(|until| self.move_in < until);
        let after_start = self.move_out.is_none_or(|out| from < out);
        // An empty stay (in and out the same day) covers no day.
        before_end && after_start && self.move_out != Some(self.move_in) && until != Some(from)
    }
}

/// What a row says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The customer moved in on `date` (and out on `out`, for a past stay).
    In { date: NaiveDate, out: Option<NaiveDate> },
    /// The customer moved out on `date`.
    Out { date: NaiveDate },
}

/// What a row does to the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The file says what is stored: nothing to do.
    Unchanged,
    /// A new stay `id` from `date` (ended on `out` when given), ending the
    /// current holder's stay `ends` on the same day.
    Start { id: Uuid, date: NaiveDate, out: Option<NaiveDate>, ends: Option<Uuid> },
    /// Stay `id` ends on `date`.
    End { id: Uuid, date: NaiveDate },
    /// The row cannot happen: why (a reason and a message).
    Refused(&'static str, &'static str),
}

/// The history of one role at one premises, as the rows of a file change it.
#[derive(Debug, Clone, Default)]
pub struct RoleHistory {
    pub stays: Vec<Stay>,
}

impl RoleHistory {
    /// What `customer`'s `m` does here (a new stay would be `id`), the history updated.
    pub fn apply(&mut self, customer: Uuid, m: Move, id: Uuid) -> Step {
        match m {
            Move::In { date, out } => self.move_in(customer, date, out, id),
            Move::Out { date } => self.move_out(customer, date),
        }
    }

    fn move_in(&mut self, customer: Uuid, date: NaiveDate, out: Option<NaiveDate>, id: Uuid) -> Step {
        if out.is_some_and(|out| out < date) {
            return Step::Refused("MOVE_OUT_BEFORE_MOVE_IN", "the move-out date is before the move-in date");
        }
        // The same stay again (a file imported twice): nothing, or its end.
        if let Some(same) = self.stays.iter_mut().find(|s| s.customer == customer && s.move_in == date) {
            return match (same.move_out, out) {
                (_, None) => Step::Unchanged,
                (Some(stored), Some(out)) if stored == out => Step::Unchanged,
                (Some(_), Some(_)) => Step::Refused("OCCUPANCY_DIFFERS", "this stay is stored with another move-out date"),
                (None, Some(out)) => {
                    same.move_out = Some(out);
                    Step::End { id: same.id, date: out }
                }
            };
        }
        let current = self.stays.iter().position(|s| s.move_out.is_none());
        if current.is_some_and(|i| out.is_none() && self.stays[i].move_in >= date) {
            return Step::Refused("OCCUPANCY_OVERLAP", "the role's current holder moved in on or after that day");
        }
        // A stay that becomes current ends the current holder's on its first day; a past stay
        // (with its move-out) must fit between the others, the current one included.
        let overlaps = self.stays.iter().enumerate().any(|(i, s)| (out.is_some() || Some(i) != current) && s.overlaps(date, out));
        if overlaps {
            return Step::Refused("OCCUPANCY_OVERLAP", "someone held the role on some of these days");
        }
        let ends = match current {
            Some(i) if out.is_none() => {
                self.stays[i].move_out = Some(date);
                Some(self.stays[i].id)
            }
            _ => None,
        };
        self.stays.push(Stay { id, customer, move_in: date, move_out: out });
        Step::Start { id, date, out, ends }
    }

    fn move_out(&mut self, customer: Uuid, date: NaiveDate) -> Step {
        if let Some(current) = self.stays.iter_mut().find(|s| s.move_out.is_none() && s.customer == customer) {
            if date < current.move_in {
                return Step::Refused("MOVE_OUT_BEFORE_MOVE_IN", "the move-out date is before the holder's move-in date");
            }
            current.move_out = Some(date);
            return Step::End { id: current.id, date };
        }
        if self.stays.iter().any(|s| s.customer == customer && s.move_out == Some(date)) {
            return Step::Unchanged;
        }
        Step::Refused("NOT_THE_HOLDER", "the customer does not hold this role at these premises now")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str) -> NaiveDate {
        parse_date(d).unwrap()
    }

    #[test]
    fn fields_roles_and_dates_are_read_in_chinese_and_english() {
        for (field, name) in NAMES {
            assert_eq!(OccupancyField::parse(name), Some(*field));
        }
        let headers: Vec<String> = ["房号", "客户手机", "身份", "迁入日期", "迁出日期"].iter().map(|h| (*h).to_owned()).collect();
        let fields: Vec<Option<OccupancyField>> = suggest(&headers).into_iter().map(|s| s.field).collect();
        use OccupancyField::*;
        assert_eq!(fields, [Some(UnitCode), Some(CustomerPhone), Some(Role), Some(MoveInDate), Some(MoveOutDate)]);
        assert_eq!(parse_role("业主"), Some("OWNER"));
        assert_eq!(parse_role("occupancy_role_tenant"), Some("TENANT"));
        assert_eq!(parse_role("guest"), None);
        assert_eq!(parse_date("2026年3月1日"), Some(day("2026-03-01")));
        assert_eq!(parse_date("20260301"), Some(day("2026-03-01")));
        assert_eq!(parse_date("soon"), None);
    }

    #[test]
    fn a_move_in_ends_the_current_holder_and_the_same_file_again_changes_nothing() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let mut history = RoleHistory::default();
        assert_eq!(
            history.apply(ada, Move::In { date: day("2020-01-01"), out: None }, first),
            Step::Start { id: first, date: day("2020-01-01"), out: None, ends: None }
        );
        assert_eq!(
            history.apply(bob, Move::In { date: day("2023-05-01"), out: None }, second),
            Step::Start { id: second, date: day("2023-05-01"), out: None, ends: Some(first) }
        );
        // The same two rows again: nothing.
        assert_eq!(history.apply(ada, Move::In { date: day("2020-01-01"), out: None }, Uuid::now_v7()), Step::Unchanged);
        assert_eq!(history.apply(bob, Move::In { date: day("2023-05-01"), out: None }, Uuid::now_v7()), Step::Unchanged);
        // Ada moved out when Bob moved in: said again, nothing; Bob moving out ends his stay.
        assert_eq!(history.apply(ada, Move::Out { date: day("2023-05-01") }, Uuid::now_v7()), Step::Unchanged);
        assert_eq!(
            history.apply(bob, Move::Out { date: day("2026-01-01") }, Uuid::now_v7()),
            Step::End { id: second, date: day("2026-01-01") }
        );
        assert_eq!(
            history.apply(bob, Move::Out { date: day("2026-02-01") }, Uuid::now_v7()),
            Step::Refused("NOT_THE_HOLDER", "the customer does not hold this role at these premises now")
        );
    }

    #[test]
    fn moves_that_cannot_happen_are_refused() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut history = RoleHistory::default();
        history.apply(ada, Move::In { date: day("2024-01-01"), out: None }, Uuid::now_v7());
        let refused = |step: Step| match step {
            Step::Refused(reason, _) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(history.apply(bob, Move::In { date: day("2024-01-01"), out: None }, Uuid::now_v7())), "OCCUPANCY_OVERLAP");
        assert_eq!(refused(history.apply(bob, Move::In { date: day("2023-01-01"), out: None }, Uuid::now_v7())), "OCCUPANCY_OVERLAP");
        // A past stay that ends after the current holder's began overlaps it; one that ends before does not.
        let past = Move::In { date: day("2023-01-01"), out: Some(day("2024-02-01")) };
        assert_eq!(refused(history.apply(bob, past, Uuid::now_v7())), "OCCUPANCY_OVERLAP");
        let id = Uuid::now_v7();
        let past = Move::In { date: day("2023-01-01"), out: Some(day("2024-01-01")) };
        assert_eq!(history.apply(bob, past, id), Step::Start { id, date: day("2023-01-01"), out: Some(day("2024-01-01")), ends: None });
        let backwards = Move::In { date: day("2025-01-01"), out: Some(day("2024-01-01")) };
        assert_eq!(refused(history.apply(bob, backwards, Uuid::now_v7())), "MOVE_OUT_BEFORE_MOVE_IN");
        assert_eq!(refused(history.apply(ada, Move::Out { date: day("2023-12-31") }, Uuid::now_v7())), "MOVE_OUT_BEFORE_MOVE_IN");
    }
}
