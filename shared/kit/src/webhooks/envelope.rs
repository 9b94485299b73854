//! The body of a webhook request: the event envelope (`crm.events.v1.Event`)
//! in proto3 JSON, its `data` an `Any` with `@type` — the same JSON the REST
//! API and the gateway's event stream show.

use prost::Message;
use prost_reflect::{DynamicMessage, SerializeOptions};

use crm_proto::crm::events::v1::Event;

use crate::{error::Error, history::POOL};

/// `event` as the JSON body a webhook receives.
pub fn json_body(event: &Event) -> Result<Vec<u8>, Error> {
    let descriptor =
        POOL.get_message_by_name("crm.events.v1.Event").ok_or_else(|| Error::internal(anyhow::anyhow!("no Event descriptor")))?;
    let dynamic = DynamicMessage::decode(descriptor, event.encode_to_vec().as_slice()).map_err(Error::internal)?;
    let mut body = Vec::with_capacity(256 + event.data.as_ref().map_or(0, |d| d.value.len() * 2));
    dynamic
        .serialize_with_options(&mut serde_json::Serializer::new(&mut body), &SerializeOptions::new())
        .map_err(|e| Error::internal(anyhow::anyhow!("event {} does not serialise: {e}", event.id)))?;
    Ok(body)
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
}
