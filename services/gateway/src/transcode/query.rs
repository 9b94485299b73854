//! Query parameters → request fields: `pageSize` or `page_size`, nested
//! `a.b`, repeated fields by repetition (`names=a&names=b`), enums by name,
//! `updateMask=a,b`, timestamps as RFC 3339. Values are put into the JSON
//! object as strings (the proto3 JSON parser accepts strings for every number
//! and well-known type) except booleans, which it only accepts as `true`/`false`.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::object::{existing_key, parent_map};
use crate::errors::ApiError;

/// Well-known message types whose JSON form is a single scalar.
const SCALAR_MESSAGES: &[&str] = &[
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
    "google.protobuf.BoolValue",
    "google.protobuf.Int32Value",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.FloatValue",
    "google.protobuf.DoubleValue",
];

/// Applies the raw query string to `root`; `bound` are the field paths the
/// path and body already set (setting them again is an error, not an override).
pub(super) fn apply(root: &mut Map<String, Value>, input: &MessageDescriptor, query: &str, bound: &[Vec<String>]) -> Result<(), ApiError> {
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let path = resolve(input, &key)?;
        if bound.iter().any(|b| b.starts_with(&path) || path.starts_with(b)) {
            return Err(ApiError::bad_request(
                "FIELD_BOUND_TWICE",
                format!("query parameter {key:?} sets a field the path or body already sets"),
            ));
        }
        let (map, field) = parent_map(root, input, &path)?;
        let json = scalar(&field, &value);
        let json_key = existing_key(map, &field);
        if field.is_list() {
            match map.entry(json_key).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(items) => items.push(json),
                _ => unreachable!("only the query writes repeated fields here"),
            }
        } else if map.insert(json_key, json).is_some() {
            return Err(ApiError::bad_request("FIELD_BOUND_TWICE", format!("query parameter {key:?} is given more than once")));
        }
    }
    Ok(())
}

/// `a.b` (JSON or proto names) → proto field path; every step but the last a
/// singular message, the last a scalar, enum, scalar WKT or a repeated one of those.
fn resolve(input: &MessageDescriptor, key: &str) -> Result<Vec<String>, ApiError> {
    let unknown = || ApiError::bad_request("UNKNOWN_QUERY_PARAMETER", format!("unknown query parameter {key:?}"));
    let parts: Vec<&str> = key.split('.').collect();
    let mut desc = input.clone();
    let mut path = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let field = desc.get_field_by_name(part).or_else(|| desc.get_field_by_json_name(part)).ok_or_else(unknown)?;
        path.push(field.name().to_owned());
        let last = i + 1 == parts.len();
        match field.kind() {
            _ if field.is_map() => return Err(unsettable(key)),
            Kind::Message(m) if last && !SCALAR_MESSAGES.contains(&m.full_name()) => return Err(unsettable(key)),
            Kind::Message(m) if !last && !field.is_list() => desc = m,
            _ if !last => return Err(unknown()),
            _ => {}
        }
    }
    Ok(path)
}

fn unsettable(key: &str) -> ApiError {
    ApiError::bad_request("UNKNOWN_QUERY_PARAMETER", format!("query parameter {key:?} names a map or message field; set it in the body"))
}

fn scalar(field: &FieldDescriptor, value: &str) -> Value {
    let type_name = match field.kind() {
        Kind::Bool => "bool".to_owned(),
        Kind::Message(m) => m.full_name().to_owned(),
        _ => String::new(),
    };
    match (type_name.as_str(), value) {
        ("bool" | "google.protobuf.BoolValue", "true") => Value::Bool(true),
        ("bool" | "google.protobuf.BoolValue", "false") => Value::Bool(false),
        // AIP examples (and gRPC clients) write masks with proto names; the
        // JSON form wants lowerCamel, so accept both.
        ("google.protobuf.FieldMask", mask) => Value::String(mask.split(',').map(|p| lower_camel(p.trim())).collect::<Vec<_>>().join(",")),
        (_, other) => Value::String(other.to_owned()),
    }
}

/// `display_name.first_part` → `displayName.firstPart`; lowerCamel input is unchanged.
fn lower_camel(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mask_paths_become_lower_camel() {
        assert_eq!(super::lower_camel("display_name"), "displayName");
        assert_eq!(super::lower_camel("birthday.month"), "birthday.month");
        assert_eq!(super::lower_camel("address.postal_code"), "address.postalCode");
        assert_eq!(super::lower_camel("displayName"), "displayName");
    }
}
