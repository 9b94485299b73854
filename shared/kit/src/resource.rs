//! Resource names (AIP-122) of the form `{collection}/{uuid}`.

use uuid::Uuid;

use crate::error::Error;

/// The id in `name` when it is `{collection}/{uuid}`; otherwise INVALID_ARGUMENT
/// on `field` with `reason` and a message showing the expected form.
pub fn parse_id(name: &str, collection: &str, field: &str, reason: &'static str) -> Result<Uuid, Error> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| Error::invalid(field, reason, format!("{name:?} is not a name like \"{collection}/<uuid>\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_or_rejected_with_the_given_reason() {
        let id = Uuid::now_v7();
        assert_eq!(parse_id(&format!("tickets/{id}"), "tickets", "name", "INVALID_NAME").unwrap(), id);
        for bad in ["tickets/x", "ticket/0190a4c2-0000-7000-8000-000000000001", "tickets0190a4c2-0000-7000-8000-000000000001", ""] {
            let err = parse_id(bad, "tickets", "name", "INVALID_TEAM").unwrap_err();
            assert_eq!(err.reason(), "INVALID_TEAM", "{bad}");
        }
    }
}
