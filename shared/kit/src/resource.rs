//! Resource names (AIP-122) of the form `{collection}/{uuid}`, and the errors
//! that name a resource: one [`ResourceType`] per resource replaces a
//! name/parse/not-found helper per resource in every service.

use uuid::Uuid;

use crate::error::Error;

/// A kind of resource: its collection in names and its type in error details.
///
/// ```
/// # use crm_kit::resource::ResourceType;
/// const TICKET: ResourceType = ResourceType::new("tickets.crm/Ticket", "tickets");
/// let id = uuid::Uuid::now_v7();
/// assert_eq!(TICKET.parse(&TICKET.name(id), "name").unwrap(), id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// Type in `ResourceInfo`, e.g. `tickets.crm/Ticket`.
    pub type_name: &'static str,
    /// Collection id in names, e.g. `tickets`.
    pub collection: &'static str,
}

impl ResourceType {
    /// A resource type named `type_name` whose names are `{collection}/{uuid}`.
    pub const fn new(type_name: &'static str, collection: &'static str) -> Self {
        Self { type_name, collection }
    }

    /// `{collection}/{id}`.
    pub fn name(&self, id: Uuid) -> String {
        format!("{}/{id}", self.collection)
    }

    /// The id in `name`; INVALID_ARGUMENT on `field` (reason `INVALID_NAME`) otherwise.
    pub fn parse(&self, name: &str, field: &str) -> Result<Uuid, Error> {
        self.parse_as(name, field, "INVALID_NAME")
    }

    /// Like [`parse`](Self::parse) with another reason, for reference fields
    /// whose clients match on it (e.g. `INVALID_TEAM`).
    pub fn parse_as(&self, name: &str, field: &str, reason: &'static str) -> Result<Uuid, Error> {
        parse_id(name, self.collection, field, reason)
    }

    /// The id in `name` if it is a well-formed name of this type; for optional references.
    pub fn id_of(&self, name: &str) -> Option<Uuid> {
        parse_id(name, self.collection, "", "INVALID_NAME").ok()
    }

    /// NOT_FOUND with `ResourceInfo` naming the resource.
    pub fn not_found(&self, id: Uuid) -> Error {
        Error::NotFound { resource_type: self.type_name, name: self.name(id) }
    }

    /// ABORTED `ETAG_MISMATCH` naming the resource.
    pub fn etag_mismatch(&self, id: Uuid) -> Error {
        Error::EtagMismatch { resource_type: self.type_name, name: self.name(id) }
    }

    /// Checks the caller's `etag` (empty: no check) against the stored
    /// `revision` of resource `id`, before a change is made.
    pub fn check_etag(&self, etag: &str, field: &str, id: Uuid, revision: i64) -> Result<(), Error> {
        match crate::etag::parse(etag, field)? {
            Some(expected) if expected != revision => Err(self.etag_mismatch(id)),
            _ => Ok(()),
        }
    }
}

/// A resource that lives under a parent (AIP-122 nested collections), named
/// `{parent collection}/{uuid}/{collection}/{uuid}`, e.g.
/// `customers/{c}/relatedPersons/{p}`.
///
/// ```
/// # use crm_kit::resource::{ChildResourceType, ResourceType};
/// const CUSTOMER: ResourceType = ResourceType::new("profiles.crm/Customer", "customers");
/// const PERSON: ChildResourceType = ChildResourceType::new("profiles.crm/RelatedPerson", CUSTOMER, "relatedPersons");
/// let (c, p) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
/// assert_eq!(PERSON.parse(&PERSON.name(c, p), "name").unwrap(), (c, p));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildResourceType {
    /// Type in `ResourceInfo`, e.g. `profiles.crm/RelatedPerson`.
    pub type_name: &'static str,
    /// The parent's type.
    pub parent: ResourceType,
    /// Collection id under the parent, e.g. `relatedPersons`.
    pub collection: &'static str,
}

impl ChildResourceType {
    /// A resource type named `type_name` whose names are `{parent}/{collection}/{uuid}`.
    pub const fn new(type_name: &'static str, parent: ResourceType, collection: &'static str) -> Self {
        Self { type_name, parent, collection }
    }

    /// `{parent collection}/{parent}/{collection}/{id}`.
    pub fn name(&self, parent: Uuid, id: Uuid) -> String {
        format!("{}/{}/{id}", self.parent.name(parent), self.collection)
    }

    /// (parent id, id) in `name`; INVALID_ARGUMENT on `field` (reason `INVALID_NAME`) otherwise.
    pub fn parse(&self, name: &str, field: &str) -> Result<(Uuid, Uuid), Error> {
        let invalid = || {
            Error::invalid(
                field,
                "INVALID_NAME",
                format!("{name:?} is not a name like \"{}/<uuid>/{}/<uuid>\"", self.parent.collection, self.collection),
            )
        };
        let (parent, rest) = name.split_once(&format!("/{}/", self.collection)).ok_or_else(invalid)?;
        let parent = self.parent.id_of(parent).ok_or_else(invalid)?;
        let id = Uuid::parse_str(rest).map_err(|_| invalid())?;
        Ok((parent, id))
    }

    /// NOT_FOUND with `ResourceInfo` naming the resource.
    pub fn not_found(&self, parent: Uuid, id: Uuid) -> Error {
        Error::NotFound { resource_type: self.type_name, name: self.name(parent, id) }
    }

    /// Checks the caller's `etag` (empty: no check) against the stored
    /// `revision`: ABORTED `ETAG_MISMATCH` naming the resource when stale.
    pub fn check_etag(&self, etag: &str, field: &str, parent: Uuid, id: Uuid, revision: i64) -> Result<(), Error> {
        match crate::etag::parse(etag, field)? {
            Some(expected) if expected != revision => {
                Err(Error::EtagMismatch { resource_type: self.type_name, name: self.name(parent, id) })
            }
            _ => Ok(()),
        }
    }
}

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

    const TICKET: ResourceType = ResourceType::new("tickets.crm/Ticket", "tickets");

    #[test]
    fn names_are_parsed_or_rejected_with_the_given_reason() {
        let id = Uuid::now_v7();
        assert_eq!(parse_id(&format!("tickets/{id}"), "tickets", "name", "INVALID_NAME").unwrap(), id);
        for bad in ["tickets/x", "ticket/0190a4c2-0000-7000-8000-000000000001", "tickets0190a4c2-0000-7000-8000-000000000001", ""] {
            let err = parse_id(bad, "tickets", "name", "INVALID_TEAM").unwrap_err();
            assert_eq!(err.reason(), "INVALID_TEAM", "{bad}");
        }
    }

    #[test]
    fn a_type_formats_parses_and_names_itself_in_errors() {
        let id = Uuid::now_v7();
        assert_eq!(TICKET.name(id), format!("tickets/{id}"));
        assert_eq!(TICKET.parse(&TICKET.name(id), "name").unwrap(), id);
        assert_eq!(TICKET.parse("teams/x", "name").unwrap_err().reason(), "INVALID_NAME");
        assert_eq!(TICKET.id_of(&TICKET.name(id)), Some(id));
        assert_eq!(TICKET.id_of(""), None);
        let Error::NotFound { resource_type, name } = TICKET.not_found(id) else { panic!("NOT_FOUND") };
        assert_eq!((resource_type, name), ("tickets.crm/Ticket", TICKET.name(id)));
    }

    #[test]
    fn a_child_type_names_its_parent_and_rejects_other_shapes() {
        const PERSON: ChildResourceType = ChildResourceType::new("tickets.crm/Note", TICKET, "notes");
        let (t, n) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(PERSON.name(t, n), format!("tickets/{t}/notes/{n}"));
        assert_eq!(PERSON.parse(&PERSON.name(t, n), "name").unwrap(), (t, n));
        for bad in [format!("tickets/{t}/others/{n}"), format!("tickets/{t}/notes/x"), format!("teams/{t}/notes/{n}"), format!("notes/{n}")]
        {
            assert_eq!(PERSON.parse(&bad, "name").unwrap_err().reason(), "INVALID_NAME", "{bad}");
        }
        let Error::NotFound { name, .. } = PERSON.not_found(t, n) else { panic!("NOT_FOUND") };
        assert_eq!(name, PERSON.name(t, n));
        assert_eq!(PERSON.check_etag("r1", "etag", t, n, 2).unwrap_err().reason(), "ETAG_MISMATCH");
    }

    #[test]
    fn etags_are_checked_against_the_stored_revision() {
        let id = Uuid::now_v7();
        assert!(TICKET.check_etag("", "etag", id, 7).is_ok());
        assert!(TICKET.check_etag("r7", "etag", id, 7).is_ok());
        assert_eq!(TICKET.check_etag("r6", "etag", id, 7).unwrap_err().reason(), "ETAG_MISMATCH");
        assert_eq!(TICKET.check_etag("bogus", "etag", id, 7).unwrap_err().reason(), "INVALID_ETAG");
    }
}
