//! Field-level change history: who changed which field of a record from
//! what to what, through which request. [`diff`] compares two versions of a
//! record's proto message field by field, in the JSON form the REST API
//! shows, and keeps a second, masked copy of each value for callers who may
//! not see personal data; [`origin`] tells who and which request is behind
//! the change being handled (the kit's middleware sets it per call).

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Value as Json};

tokio::task_local! {
    /// Who and which request the call being handled comes from.
    pub(crate) static ORIGIN: Origin;
}

/// Who made a change, and through which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The token's subject, or `system:<job>` for background work.
    pub actor: String,
    /// The caller's `x-request-id` (one is made when the caller sent none).
    pub request_id: String,
}

/// The origin of the change being handled: the current call's, else the system's.
pub fn origin() -> Origin {
    ORIGIN.try_with(Clone::clone).unwrap_or_else(|_| Origin { actor: "system".to_owned(), request_id: String::new() })
}

/// Runs `work` with `origin` as the origin of its changes (background jobs name themselves).
pub async fn with_origin<F: Future>(origin: Origin, work: F) -> F::Output {
    ORIGIN.scope(origin, work).await
}

/// One changed field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// The field's proto name, e.g. `display_name`.
    pub field: String,
    /// Its value before (null: unset, or the record did not exist).
    pub old: Json,
    /// Its value after (null: unset, or the record is gone).
    pub new: Json,
    /// `old` with personal data masked.
    pub old_masked: Json,
    /// `new` with personal data masked.
    pub new_masked: Json,
}

/// Every message of the suite, for JSON in the REST form (history values, webhook bodies).
pub(crate) static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).expect("the suite's descriptor set decodes"));

/// The fields among `fields` whose values differ between `before` and
/// `after` (None: the record did not exist, or no longer does), with their
/// values as JSON, and masked by `mask`.
pub fn diff<M: Message + Name + Clone>(before: Option<&M>, after: Option<&M>, fields: &[&str], mask: impl Fn(&mut M)) -> Vec<FieldChange> {
    let masked = |m: &M| {
        let mut copy = m.clone();
        mask(&mut copy);
        copy
    };
    let [old, new, old_masked, new_masked] =
        [before.map(to_json), after.map(to_json), before.map(|m| to_json(&masked(m))), after.map(|m| to_json(&masked(m)))];
    let value = |map: &Option<Map<String, Json>>, field: &str| map.as_ref().and_then(|m| m.get(field)).cloned().unwrap_or(Json::Null);
    fields
        .iter()
        .filter(|field| value(&old, field) != value(&new, field))
        .map(|field| FieldChange {
            field: (*field).to_owned(),
            old: value(&old, field),
            new: value(&new, field),
            old_masked: value(&old_masked, field),
            new_masked: value(&new_masked, field),
        })
        .collect()
}

/// `message`'s set fields as JSON, by proto field name (unset fields are absent).
fn to_json<M: Message + Name>(message: &M) -> Map<String, Json> {
    let Some(descriptor) = POOL.get_message_by_name(&M::full_name()) else {
        return Map::new();
    };
    let Ok(dynamic) = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()) else {
        return Map::new();
    };
    let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(true);
    match dynamic.serialize_with_options(serde_json::value::Serializer, &options) {
        Ok(Json::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A JSON value as a `google.protobuf.Value`.
pub fn to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(to_value).collect() }),
        Json::Object(map) => Kind::StructValue(Struct { fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() }),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use crm_proto::google::r#type::Money;

    use super::*;

    #[test]
    fn only_changed_fields_are_reported_with_both_values_and_masked_copies() {
        let before = Money { currency_code: "USD".into(), units: 5, nanos: 0 };
        let after = Money { currency_code: "USD".into(), units: 7, nanos: 0 };
        let changes = diff(Some(&before), Some(&after), &["currency_code", "units", "nanos"], |m| m.units = 0);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "units");
        assert_eq!((changes[0].old.clone(), changes[0].new.clone()), (Json::from("5"), Json::from("7")), "int64 as JSON strings");
        assert_eq!((changes[0].old_masked.clone(), changes[0].new_masked.clone()), (Json::Null, Json::Null), "masked to the default");
    }

    #[test]
    fn a_new_record_reports_its_set_fields_from_null() {
        let created = Money { currency_code: "EUR".into(), units: 0, nanos: 0 };
        let changes = diff(None, Some(&created), &["currency_code", "units"], |_| {});
        assert_eq!(
            changes.iter().map(|c| (c.field.as_str(), c.old.clone(), c.new.clone())).collect::<Vec<_>>(),
            [("currency_code", Json::Null, Json::from("EUR"))]
        );
    }

    #[test]
    fn json_becomes_a_protobuf_value() {
        let value = to_value(&serde_json::json!({"a": [1, "x", null, true]}));
        let Some(Kind::StructValue(s)) = value.kind else { panic!("a struct") };
        let Some(Kind::ListValue(list)) = &s.fields["a"].kind else { panic!("a list") };
        assert_eq!(list.values.len(), 4);
    }
}
