//! The request's proto3-JSON object while it is assembled from the body, the
//! path and the query: where the value of a field path goes in it. Path
//! variables and query parameters both go through here, so a field is written
//! under the key the body already used for it.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use crate::errors::ApiError;

/// Sets `value` at the proto field `path` below `root`.
pub(super) fn set_path(root: &mut Map<String, Value>, message: &MessageDescriptor, path: &[String], value: Value) -> Result<(), ApiError> {
    let (map, field) = parent_map(root, message, path)?;
    map.insert(existing_key(map, &field), value);
    Ok(())
}

/// The JSON object that holds the field at `path` (proto names) below `root`,
/// created as needed, and that field. JSON keys are the fields' JSON names,
/// except where the body already used the proto name.
pub(super) fn parent_map<'a>(
    root: &'a mut Map<String, Value>,
    message: &MessageDescriptor,
    path: &[String],
) -> Result<(&'a mut Map<String, Value>, FieldDescriptor), ApiError> {
    let (last, parents) = path.split_last().expect("field paths are never empty");
    let mut current = root;
    let mut desc = message.clone();
    for part in parents {
        let field =
            desc.get_field_by_name(part).ok_or_else(|| ApiError::bad_request("INVALID_ARGUMENT", format!("unknown field {part:?}")))?;
        let key = existing_key(current, &field);
        current = match current.entry(key).or_insert_with(|| Value::Object(Map::new())) {
            Value::Object(map) => map,
            _ => return Err(ApiError::bad_request("INVALID_ARGUMENT", format!("field {part:?} must be a JSON object"))),
        };
        desc = match field.kind() {
            Kind::Message(m) if !field.is_list() && !field.is_map() => m,
            _ => return Err(ApiError::bad_request("INVALID_ARGUMENT", format!("field {part:?} is not a message"))),
        };
    }
    let field = desc.get_field_by_name(last).ok_or_else(|| ApiError::bad_request("INVALID_ARGUMENT", format!("unknown field {last:?}")))?;
    Ok((current, field))
}

/// The key under which `field` sits in `map`: the one already used, else its JSON name.
pub(super) fn existing_key(map: &Map<String, Value>, field: &FieldDescriptor) -> String {
    if map.contains_key(field.name()) && !map.contains_key(field.json_name()) {
        field.name().to_owned()
    } else {
        field.json_name().to_owned()
    }
}
