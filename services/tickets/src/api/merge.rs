//! Request checks of `MergeTickets`; the merge itself is `app::merge`.

use crm_kit::{Error, FieldViolation};
use uuid::Uuid;

use crate::resources::TICKET;

/// Most duplicates one call merges.
const MAX_SOURCES: usize = 50;

/// Parses the duplicates' names: 1-50, distinct, none of them the survivor.
pub(super) fn parse_sources(names: &[String], target: Uuid) -> Result<Vec<Uuid>, Error> {
    if names.is_empty() || names.len() > MAX_SOURCES {
        return Err(Error::invalid("source_tickets", "INVALID_COUNT", format!("name 1 to {MAX_SOURCES} tickets to merge")));
    }
    let mut violations = Vec::new();
    let mut ids = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field = format!("source_tickets[{i}]");
        match TICKET.parse(name, &field) {
            Ok(id) if id == target => violations.push(FieldViolation::new(field, "SAME_TICKET", "a ticket cannot be merged into itself")),
            Ok(id) if ids.contains(&id) => violations.push(FieldViolation::new(field, "DUPLICATE", "named twice")),
            Ok(id) => ids.push(id),
            Err(Error::InvalidArgument { violations: found }) => violations.extend(found),
            Err(other) => return Err(other),
        }
    }
    if violations.is_empty() { Ok(ids) } else { Err(Error::InvalidArgument { violations }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_checked_one_violation_each() {
        let target = Uuid::now_v7();
        let other = Uuid::now_v7();
        let names = vec![TICKET.name(other), TICKET.name(target), TICKET.name(other), "tickets/nope".to_owned()];
        let Err(Error::InvalidArgument { violations }) = parse_sources(&names, target) else { panic!("invalid") };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["source_tickets[1]", "source_tickets[2]", "source_tickets[3]"]);
        assert!(parse_sources(&[], target).is_err());
        assert_eq!(parse_sources(&[TICKET.name(other)], target).unwrap(), vec![other]);
    }
}
