//! Reading what a service relayed to JetStream: every message of a stream, in
//! stream order, decoded back into the event envelope.

use std::{
    ops::RangeInclusive,
    time::{Duration, Instant},
};

use async_nats::jetstream;
use crm_proto::crm::events::v1::Event;
use prost::Message;

/// One relayed message.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// Its subject.
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub message_id: String,
    /// The event it carries.
    pub event: Event,
}

/// Waits (at most `within`) until `stream` holds at least `count` messages;
/// then every message, in stream order. An absent stream counts as empty.
pub async fn wait_for_messages(client: &async_nats::Client, stream: &str, count: u64, within: Duration) -> Vec<Relayed> {
    let js = jetstream::new(client.clone());
    let deadline = Instant::now() + within;
    let held = loop {
        let held = match js.get_stream(stream).await {
            Ok(s) => s.get_info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if held >= count || Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    messages_in(client, stream, 1..=held).await
}

/// The messages of `stream` with the given stream sequences, in order
/// (each must be stored).
pub async fn messages_in(client: &async_nats::Client, stream: &str, sequences: RangeInclusive<u64>) -> Vec<Relayed> {
    if sequences.is_empty() {
        return Vec::new();
    }
    let s = jetstream::new(client.clone()).get_stream(stream).await.expect("the stream exists");
    let mut messages = Vec::with_capacity((sequences.end() - sequences.start() + 1) as usize);
    for sequence in sequences {
        let message = s.get_raw_message(sequence).await.expect("a stored message");
        messages.push(Relayed {
            subject: message.subject.to_string(),
            message_id: message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()).unwrap_or_default(),
            event: Event::decode(message.payload).expect("an Event"),
        });
    }
    messages
}
