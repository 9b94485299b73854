//! The body of a webhook request: the event envelope (`crm.events.v1.Event`)
//! in proto3 JSON, its `data` an `Any` with `@type` — the same JSON the REST
//! API and the gateway's event stream show.

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use prost_reflect::{DynamicMessage, SerializeOptions};

use crm_proto::crm::events::v1::Event;

use crate::{error::Error, history::POOL};

/// `event` as the JSON body a webhook receives. An event whose data this
/// build cannot render as JSON (a payload it has no schema for) still goes
/// out, its data as `{"@type", "value": <base64 of the bytes>}`: one odd
/// event must not hold every later one back.
pub fn json_body(event: &Event) -> Result<Vec<u8>, Error> {
    let dynamic = DynamicMessage::decode(descriptor_of_event()?, event.encode_to_vec().as_slice()).map_err(Error::internal)?;
    let mut body = Vec::with_capacity(256 + event.data.as_ref().map_or(0, |d| d.value.len() * 2));
    if dynamic.serialize_with_options(&mut serde_json::Serializer::new(&mut body), &SerializeOptions::new()).is_ok() {
        return Ok(body);
    }
    tracing::warn!(event.id = %event.id, event.r#type = %event.r#type, "event data has no JSON form here; sent as base64");
    let without_data = Event { data: None, ..event.clone() };
    let dynamic = DynamicMessage::decode(descriptor_of_event()?, without_data.encode_to_vec().as_slice()).map_err(Error::internal)?;
    let mut json = serde_json::to_value(&dynamic).map_err(Error::internal)?;
    let data = event.data.clone().unwrap_or_default();
    json["data"] = serde_json::json!({"@type": data.type_url, "value": STANDARD.encode(&data.value)});
    serde_json::to_vec(&json).map_err(Error::internal)
}

fn descriptor_of_event() -> Result<prost_reflect::MessageDescriptor, Error> {
    POOL.get_message_by_name("crm.events.v1.Event").ok_or_else(|| Error::internal(anyhow::anyhow!("no Event descriptor")))
}

#[cfg(test)]
mod tests {
    use crm_proto::crm::webhooks::v1::WebhookDisabled;
    use prost::Name;

    use super::*;

    #[test]
    fn the_envelope_carries_its_data_as_typed_json() {
        let data = WebhookDisabled { webhook: "webhooks/1".into(), target_uri: "https://example.com/h".into(), reason: "gone".into() };
        let event = Event {
            id: "0190".into(),
            r#type: WebhookDisabled::full_name(),
            source: "profiles".into(),
            subject: "webhooks/1".into(),
            time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            tenant: "t".into(),
            data: Some(prost_types::Any { type_url: WebhookDisabled::type_url(), value: data.encode_to_vec() }),
            position: 42,
            traceparent: String::new(),
        };
        let json: serde_json::Value = serde_json::from_slice(&json_body(&event).unwrap()).unwrap();
        assert_eq!(json["type"], "crm.webhooks.v1.WebhookDisabled");
        assert_eq!(json["position"], "42", "int64 as a JSON string, as proto3 JSON has it");
        assert_eq!(json["time"], "2023-11-14T22:13:20Z");
        assert_eq!(json["data"]["@type"], "type.googleapis.com/crm.webhooks.v1.WebhookDisabled");
        assert_eq!(json["data"]["targetUri"], "https://example.com/h");
    }

    #[test]
    fn data_without_a_schema_goes_out_as_base64() {
        let event = Event {
            id: "0191".into(),
            r#type: "crm.future.v9.Unknown".into(),
            data: Some(prost_types::Any { type_url: "type.googleapis.com/crm.future.v9.Unknown".into(), value: vec![1, 2, 3] }),
            ..Default::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&json_body(&event).unwrap()).unwrap();
        assert_eq!(json["id"], "0191");
        assert_eq!(json["data"]["@type"], "type.googleapis.com/crm.future.v9.Unknown");
        assert_eq!(json["data"]["value"], "AQID");
    }
}
