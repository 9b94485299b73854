//! Proto messages → JSON Schema (OpenAPI 3.1 dialect) following the proto3
//! JSON mapping the gateway speaks: lowerCamel names, enums by name, 64-bit
//! integers as strings, well-known types in their JSON forms. Also the proto
//! comments and `google.api.field_behavior`.

use std::collections::{BTreeMap, HashSet};

use prost_reflect::{DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value as ProtoValue};
use serde_json::{Map, Value, json};

use super::{comments::Comments, ids::UuidCollections};

/// `google.api.FieldBehavior` numbers the generator reads.
const REQUIRED: i32 = 2;
pub(crate) const OUTPUT_ONLY: i32 = 3;
const INPUT_ONLY: i32 = 4;

/// The component key of a message: its full proto name (unique across packages).
pub(crate) fn component_name(message: &MessageDescriptor) -> &str {
    message.full_name()
}

/// A `$ref` to a message's component.
pub(crate) fn reference(message: &MessageDescriptor) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", component_name(message)) })
}

/// Builds component schemas for messages on demand, following references.
pub(crate) struct Schemas<'a> {
    comments: &'a Comments,
    ids: &'a UuidCollections,
    field_behavior: Option<ExtensionDescriptor>,
    resource_reference: Option<ExtensionDescriptor>,
    /// Finished (or in-progress) components, in name order.
    components: BTreeMap<String, Value>,
    /// RPC input messages: only their REQUIRED fields are listed as `required`.
    /// A resource's REQUIRED holds on create, not in a partial update or a
    /// response where proto3 JSON leaves default values out.
    requests: HashSet<String>,
}

impl<'a> Schemas<'a> {
    pub(crate) fn new(pool: &DescriptorPool, comments: &'a Comments, ids: &'a UuidCollections, requests: HashSet<String>) -> Self {
        Self {
            comments,
            ids,
            field_behavior: pool.get_extension_by_name("google.api.field_behavior"),
            resource_reference: pool.get_extension_by_name("google.api.resource_reference"),
            components: BTreeMap::new(),
            requests,
        }
    }

    /// The schema of `message` where it is used: a well-known type inline, else a
    /// `$ref` to its component (built, with everything it references, on first use).
    pub(crate) fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(wkt) = well_known(message.full_name()) {
            return wkt;
        }
        let name = component_name(message).to_owned();
        if !self.components.contains_key(&name) {
            // Placeholder first, so that recursive messages terminate.
            self.components.insert(name.clone(), Value::Null);
            let schema = self.object(message, &[], self.requests.contains(message.full_name()));
            self.components.insert(name, schema);
        }
        reference(message)
    }

    /// An object schema of `message`'s fields, leaving out the top-level fields
    /// in `skip` (those bound by the path); `required` lists REQUIRED fields.
    pub(crate) fn object(&mut self, message: &MessageDescriptor, skip: &[&str], required: bool) -> Value {
        let mut properties = Map::new();
        let mut required_fields = Vec::new();
        for field in message.fields() {
            if skip.contains(&field.name()) {
                continue;
            }
            let behaviors = self.behaviors(&field);
            let mut schema = self.field(&field);
            if let Some(pattern) = self.reference_pattern(&field) {
                // A name's form (empty allowed: some requests take the name from elsewhere).
                let value = if field.is_list() { &mut schema["items"] } else { &mut schema };
                value["pattern"] = Value::String(pattern);
            } else if required && behaviors.contains(&REQUIRED) && field.kind() == Kind::String && !field.is_list() && !field.is_map() {
                // A required text in a request is refused blank (the services trim it).
                merge(&mut schema, non_blank());
            }
            let mut notes: Vec<String> = Vec::new();
            if behaviors.contains(&OUTPUT_ONLY) {
                schema["readOnly"] = Value::Bool(true);
                notes.push("Output only.".into());
            }
            if behaviors.contains(&INPUT_ONLY) {
                schema["writeOnly"] = Value::Bool(true);
                notes.push("Input only.".into());
            }
            if behaviors.contains(&REQUIRED) {
                notes.push("Required.".into());
                if required {
                    required_fields.push(Value::String(field.json_name().to_owned()));
                }
            }
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                let others: Vec<String> =
                    oneof.fields().filter(|f| f.name() != field.name()).map(|f| format!("`{}`", f.json_name())).collect();
                notes.push(format!("At most one of this and {} is set.", others.join(", ")));
            }
            notes.extend(self.comments.get(field.parent_file().name(), field.path()).map(str::to_owned));
            // An enum's own description (its values) comes after the field's.
            notes.extend(schema.get("description").and_then(Value::as_str).map(str::to_owned));
            if !notes.is_empty() {
                schema["description"] = Value::String(notes.join(" "));
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = json!({ "type": "object", "properties": properties, "additionalProperties": false });
        if !required_fields.is_empty() {
            schema["required"] = Value::Array(required_fields);
        }
        if let Some(comment) = self.comments.get(message.parent_file().name(), message.path()) {
            schema["description"] = Value::String(comment.to_owned());
        }
        schema["title"] = Value::String(message.name().to_owned());
        schema
    }

    /// The schema of one field's JSON value (a list or map included).
    pub(crate) fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("map fields are messages") };
            let value = self.single(&entry.map_entry_value_field());
            return json!({ "type": "object", "additionalProperties": value });
        }
        let single = self.single(field);
        if field.is_list() { json!({ "type": "array", "items": single }) } else { single }
    }

    /// The schema of one value of `field`'s type (ignoring repetition).
    pub(crate) fn single(&mut self, field: &FieldDescriptor) -> Value {
        match field.kind() {
            Kind::Message(m) => self.message(&m),
            Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => json!({ "type": "null" }),
            Kind::Enum(e) => {
                let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
                let mut schema = json!({ "type": "string", "enum": names });
                let file = e.parent_file();
                let values: Vec<String> =
                    e.values().filter_map(|v| self.comments.get(file.name(), v.path()).map(|c| format!("- `{}`: {c}", v.name()))).collect();
                let text: Vec<String> = self
                    .comments
                    .get(file.name(), e.path())
                    .map(str::to_owned)
                    .into_iter()
                    .chain((!values.is_empty()).then(|| values.join("\n")))
                    .collect();
                if !text.is_empty() {
                    schema["description"] = Value::String(text.join("\n\n"));
                }
                schema
            }
            kind => scalar(&kind),
        }
    }

    /// The form of a name `field` holds (`google.api.resource_reference` to a
    /// resource whose ids are all UUIDs), as a regular expression.
    fn reference_pattern(&self, field: &FieldDescriptor) -> Option<String> {
        let extension = self.resource_reference.as_ref()?;
        let options = field.options();
        if field.kind() != Kind::String || field.is_map() || !options.has_extension(extension) {
            return None;
        }
        let reference = options.get_extension(extension);
        let kind = reference.as_message()?.get_field_by_name("type")?;
        self.ids.name_pattern(kind.as_str()?)
    }

    /// The `google.api.field_behavior` values of `field`.
    pub(crate) fn behaviors(&self, field: &FieldDescriptor) -> Vec<i32> {
        let Some(extension) = &self.field_behavior else { return Vec::new() };
        let options = field.options();
        if !options.has_extension(extension) {
            return Vec::new();
        }
        match options.get_extension(extension).as_ref() {
            ProtoValue::List(values) => values.iter().filter_map(ProtoValue::as_enum_number).collect(),
            ProtoValue::EnumNumber(n) => vec![*n],
            _ => Vec::new(),
        }
    }

    /// The JSON names of `message`'s REQUIRED fields (none for a well-known type).
    pub(crate) fn required_fields(&self, message: &MessageDescriptor) -> Vec<String> {
        if well_known(message.full_name()).is_some() {
            return Vec::new();
        }
        message.fields().filter(|f| self.is_required(f)).map(|f| f.json_name().to_owned()).collect()
    }

    /// `message`'s REQUIRED singular text fields as properties that refuse a
    /// blank value, for a body that must carry them.
    pub(crate) fn non_blank_required(&self, message: &MessageDescriptor) -> Map<String, Value> {
        message
            .fields()
            .filter(|f| self.is_required(f) && f.kind() == Kind::String && !f.is_list() && !f.is_map())
            .map(|f| (f.json_name().to_owned(), non_blank()))
            .collect()
    }

    /// Whether `field` is REQUIRED.
    pub(crate) fn is_required(&self, field: &FieldDescriptor) -> bool {
        self.behaviors(field).contains(&REQUIRED)
    }

    /// The comment of `message`.
    pub(crate) fn comment_of_field(&self, field: &FieldDescriptor) -> Option<&str> {
        self.comments.get(field.parent_file().name(), field.path())
    }

    /// Every component built so far.
    pub(crate) fn into_components(self) -> Map<String, Value> {
        self.components.into_iter().collect()
    }
}

/// A text with something besides white space in it.
fn non_blank() -> Value {
    json!({ "minLength": 1, "pattern": "\\S" })
}

/// Adds `extra`'s keywords to `schema`.
fn merge(schema: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (schema.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// Scalar kinds in the proto3 JSON mapping.
pub(crate) fn scalar(kind: &Kind) -> Value {
    match kind {
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => json!({ "type": "number", "format": "float" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX }),
        // 64-bit integers are JSON strings: a JavaScript number cannot hold them.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$" }),
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte", "contentEncoding": "base64" }),
        Kind::Message(_) | Kind::Enum(_) => unreachable!("not a scalar kind"),
    }
}

/// The JSON form of a well-known type, or `None` for an ordinary message.
pub(crate) fn well_known(full_name: &str) -> Option<Value> {
    let nullable = |t: &str, format: Option<&str>| {
        let mut schema = json!({ "type": [t, "null"] });
        if let Some(format) = format {
            schema["format"] = Value::String(format.to_owned());
        }
        schema
    };
    Some(match full_name {
        "google.protobuf.Timestamp" => {
            json!({ "type": "string", "format": "date-time", "description": "RFC 3339 timestamp, e.g. `2024-05-01T12:00:00Z`." })
        }
        "google.protobuf.Duration" => json!({
            "type": "string",
            "pattern": "^-?[0-9]{1,12}(\\.[0-9]{1,9})?s$",
            "description": "Duration in seconds with an `s` suffix, e.g. `3600s` or `1.5s`.",
        }),
        "google.protobuf.FieldMask" => json!({
            "type": "string",
            "description": "Comma-separated field paths (lowerCamel), e.g. `displayName,emails`.",
        }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.Empty" => json!({ "type": "object", "additionalProperties": false }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string", "description": "Type URL, e.g. `type.googleapis.com/google.rpc.ErrorInfo`." } },
            "required": ["@type"],
            "additionalProperties": true,
        }),
        "google.protobuf.StringValue" => nullable("string", None),
        "google.protobuf.BytesValue" => nullable("string", Some("byte")),
        "google.protobuf.BoolValue" => nullable("boolean", None),
        "google.protobuf.Int32Value" => nullable("integer", Some("int32")),
        "google.protobuf.UInt32Value" => nullable("integer", Some("int64")),
        "google.protobuf.Int64Value" => nullable("string", Some("int64")),
        "google.protobuf.UInt64Value" => nullable("string", Some("uint64")),
        "google.protobuf.FloatValue" => nullable("number", Some("float")),
        "google.protobuf.DoubleValue" => nullable("number", Some("double")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_types_have_their_json_forms() {
        assert_eq!(well_known("google.protobuf.Timestamp").unwrap()["format"], "date-time");
        assert_eq!(well_known("google.protobuf.Int64Value").unwrap()["type"], json!(["string", "null"]));
        assert_eq!(well_known("google.protobuf.Any").unwrap()["required"], json!(["@type"]));
        assert!(well_known("crm.profiles.v1.Customer").is_none());
        assert_eq!(scalar(&Kind::Int64)["type"], "string");
        assert_eq!(scalar(&Kind::Bytes)["contentEncoding"], "base64");
    }
}
