//! A service's event stream as tests read it.

use std::time::Duration;

use crm_proto::crm::events::v1::{Event, SubscribeRequest, event_service_client::EventServiceClient};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::auth::with_token;

/// The first `n` events after position `after` of the stream on `channel`,
/// read with `bearer`; panics if they do not arrive within 20 s.
pub async fn collect(channel: &Channel, bearer: &str, after: i64, n: usize) -> Vec<Event> {
    collect_of(channel, bearer, after, n, &[]).await
}

/// The first `n` events of the given `types` (all when empty) after position `after`.
pub async fn collect_of(channel: &Channel, bearer: &str, after: i64, n: usize, types: &[&str]) -> Vec<Event> {
    let types = types.iter().map(|t| (*t).to_owned()).collect();
    let request = with_token(SubscribeRequest { after_position: after, types }, bearer);
    let mut stream = EventServiceClient::new(channel.clone()).subscribe(request).await.expect("subscribed").into_inner();
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("events arrive in time");
        events.push(next.expect("stream open").expect("no stream error").event.expect("an event"));
    }
    events
}
