//! Which collections' ids are UUIDs, read from the resources the protos
//! declare: a resource (`google.api.resource`) whose `name` field's comment
//! gives its form as `"…/{uuidv7}"` — the house convention for server-assigned
//! ids — makes the collection its patterns end in (`customers` in
//! `customers/{customer}`) a UUID collection. Ids chosen by callers
//! (`holidays/spring-festival`), link tokens and singletons are left free.
//!
//! The document gives those path parameters the UUID form, so a client — or a
//! fuzzer — fills them with ids the services can look up rather than strings
//! every service refuses as `INVALID_NAME` before any work.

use std::collections::HashSet;

use prost_reflect::{DescriptorPool, MessageDescriptor, Value as ProtoValue};

use super::schema::Comments;

/// What a resource's `name` comment says when its ids are server-assigned UUIDv7s.
const UUID_MARK: &str = "{uuidv7}";

/// A UUID in its hyphenated text form (any version: the services check the rest).
pub(crate) const UUID_PATTERN: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// The collections whose ids are UUIDs.
pub(crate) struct UuidCollections(HashSet<String>);

impl UuidCollections {
    /// Reads every resource of `pool`.
    pub(crate) fn new(pool: &DescriptorPool, comments: &Comments) -> Self {
        let Some(resource) = pool.get_extension_by_name("google.api.resource") else { return Self(HashSet::new()) };
        let mut collections = HashSet::new();
        for message in pool.all_messages() {
            let options = message.options();
            if !options.has_extension(&resource) || !uuid_named(&message, comments) {
                continue;
            }
            let descriptor = options.get_extension(&resource);
            let Some(ProtoValue::List(patterns)) =
                descriptor.as_message().and_then(|d| d.get_field_by_name("pattern")).map(|p| p.into_owned())
            else {
                continue;
            };
            collections.extend(patterns.iter().filter_map(ProtoValue::as_str).filter_map(last_collection).map(str::to_owned));
        }
        Self(collections)
    }

    /// Whether ids in `collection` (e.g. `customers`) are UUIDs.
    pub(crate) fn contains(&self, collection: &str) -> bool {
        self.0.contains(collection)
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
}
