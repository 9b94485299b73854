//! Which collections' ids are UUIDs, read from the resources the protos
//! declare: a resource (`google.api.resource`) whose `name` field's comment
//! gives its form as `"…/{uuidv7}"` — the house convention for server-assigned
//! ids — makes the collection its patterns end in (`customers` in
//! `customers/{customer}`) a UUID collection. Ids chosen by callers
//! (`holidays/spring-festival`), link tokens and singletons are left free.
//!
//! The document gives those path parameters the UUID form, and fields that
//! reference such a resource by name (`google.api.resource_reference`) the
//! name's form, so a client — or a fuzzer — sends names the services can look
//! up rather than strings every service refuses as `INVALID_NAME` before any
//! work.

use std::collections::{HashMap, HashSet};

use prost_reflect::{DescriptorPool, MessageDescriptor, Value as ProtoValue};

use super::comments::Comments;

/// What a resource's `name` comment says when its ids are server-assigned UUIDv7s.
const UUID_MARK: &str = "{uuidv7}";

/// A UUID in its hyphenated text form (any version: the services check the
/// rest), unanchored, to build patterns from.
pub(crate) const UUID_BODY: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

/// The collections whose ids are UUIDs, and the name patterns of every resource type.
#[derive(Default)]
pub(crate) struct UuidCollections {
    collections: HashSet<String>,
    /// Resource type (`profiles.crm/Customer`) → its name patterns.
    patterns: HashMap<String, Vec<String>>,
}

impl UuidCollections {
    /// Reads every resource of `pool`.
    pub(crate) fn new(pool: &DescriptorPool, comments: &Comments) -> Self {
        let Some(resource) = pool.get_extension_by_name("google.api.resource") else { return Self::default() };
        let mut ids = Self::default();
        for message in pool.all_messages() {
            let options = message.options();
            if !options.has_extension(&resource) {
                continue;
            }
            let descriptor = options.get_extension(&resource);
            let Some(descriptor) = descriptor.as_message() else { continue };
            let strings = |field: &str| -> Vec<String> {
                match descriptor.get_field_by_name(field).as_deref() {
                    Some(ProtoValue::List(values)) => values.iter().filter_map(ProtoValue::as_str).map(str::to_owned).collect(),
                    Some(ProtoValue::String(value)) => vec![value.clone()],
                    _ => Vec::new(),
                }
            };
            let patterns = strings("pattern");
            if uuid_named(&message, comments) {
                ids.collections.extend(patterns.iter().filter_map(|p| last_collection(p)).map(str::to_owned));
            }
            if let Some(kind) = strings("type").into_iter().next() {
                ids.patterns.insert(kind, patterns);
            }
        }
        ids
    }

    /// Whether ids in `collection` (e.g. `customers`) are UUIDs.
    pub(crate) fn contains(&self, collection: &str) -> bool {
        self.collections.contains(collection)
    }

    /// A regular expression for a name of resource type `kind` (or an empty
    /// string: references are optional), when every id in its patterns is a
    /// UUID; `None` when a pattern has an id of another form.
    pub(crate) fn name_pattern(&self, kind: &str) -> Option<String> {
        let alternatives: Option<Vec<String>> = self.patterns.get(kind)?.iter().map(|pattern| self.name_regex(pattern)).collect();
        let alternatives = alternatives.filter(|a| !a.is_empty())?;
        Some(format!("^$|^(?:{})$", alternatives.join("|")))
    }

    /// `customers/{customer}` → `customers/<uuid>`; `None` if an id is not a UUID.
    fn name_regex(&self, pattern: &str) -> Option<String> {
        let mut parts = Vec::new();
        let mut previous = "";
        for segment in pattern.split('/') {
            if segment.starts_with('{') {
                if !self.contains(previous) {
                    return None;
                }
                parts.push(UUID_BODY.to_owned());
            } else {
                parts.push(segment.to_owned());
            }
            previous = segment;
        }
        Some(parts.join("/"))
    }
}

/// Whether `message`'s `name` field documents its ids as UUIDv7s.
fn uuid_named(message: &MessageDescriptor, comments: &Comments) -> bool {
    message
        .get_field_by_name("name")
        .and_then(|field| comments.get(field.parent_file().name(), field.path()).map(|c| c.contains(UUID_MARK)))
        .unwrap_or(false)
}

/// The collection whose id ends `pattern` (`transactions` in
/// `customers/{customer}/transactions/{transaction}`); none for a singleton.
fn last_collection(pattern: &str) -> Option<&str> {
    let mut segments = pattern.rsplit('/');
    let id = segments.next()?;
    let collection = segments.next()?;
    (id.starts_with('{') && !collection.starts_with('{')).then_some(collection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collection_is_the_literal_before_the_last_variable() {
        assert_eq!(last_collection("customers/{customer}"), Some("customers"));
        assert_eq!(last_collection("customers/{customer}/transactions/{transaction}"), Some("transactions"));
        assert_eq!(last_collection("customers/{customer}/spending"), None);
        assert_eq!(last_collection("ticketSettings"), None);
    }

    #[test]
    fn names_are_patterns_only_where_every_id_is_a_uuid() {
        let ids = UuidCollections {
            collections: ["customers".to_owned(), "transactions".to_owned()].into(),
            patterns: [
                ("p/Customer".to_owned(), vec!["customers/{customer}".to_owned()]),
                ("p/Transaction".to_owned(), vec!["customers/{customer}/transactions/{transaction}".to_owned()]),
                ("c/Holiday".to_owned(), vec!["holidays/{holiday}".to_owned()]),
            ]
            .into(),
        };
        assert_eq!(ids.name_pattern("p/Customer").unwrap(), format!("^$|^(?:customers/{UUID_BODY})$"));
        assert_eq!(ids.name_pattern("p/Transaction").unwrap(), format!("^$|^(?:customers/{UUID_BODY}/transactions/{UUID_BODY})$"));
        assert_eq!(ids.name_pattern("c/Holiday"), None);
        assert_eq!(ids.name_pattern("unknown/Type"), None);
    }
}
