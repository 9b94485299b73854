//! Calls to the backends: one lazily connected tonic `Channel` per backend
//! URL (a Channel multiplexes calls over HTTP/2 and reconnects by itself),
//! and a codec over `prost_reflect::DynamicMessage` so that any method of
//! the descriptor set can be called without generated client code (plus one
//! whose request stream can fail, for uploads: [`FallibleStreamCodec`]).

use std::{collections::HashMap, time::Duration};

use futures::Stream;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::task::JoinHandle;
use tonic::{
    Status,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming},
    transport::{Channel, Endpoint},
};
use tracing::Instrument;

use crate::routes::{BackendMap, Route};

/// Encodes any dynamic message; decodes into the method's output type.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec whose responses are `output` messages.
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

/// Writes a dynamic message in protobuf binary form.
#[derive(Debug)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

/// Reads a message of a fixed type.
#[derive(Debug)]
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let mut message = DynamicMessage::new(self.0.clone());
        message.merge(src).map_err(|e| Status::internal(format!("decoding the response: {e}")))?;
        Ok(Some(message))
    }
}

/// [`DynamicCodec`] for a request stream that can fail: an `Err` item fails
/// the request body, which hyper answers with RST_STREAM(INTERNAL_ERROR), and
/// the backend's stream fails. (Tonic's own cancellation resets with CANCEL,
/// which a tonic server reads as a clean end of the stream: a cut-off upload
/// would look complete.)
#[derive(Debug, Clone)]
pub struct FallibleStreamCodec {
    output: MessageDescriptor,
}

impl FallibleStreamCodec {
    /// A codec whose responses are `output` messages.
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output }
    }
}

impl Codec for FallibleStreamCodec {
    type Encode = Result<DynamicMessage, Status>;
    type Decode = DynamicMessage;
    type Encoder = FallibleEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        FallibleEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

/// Writes a message, or fails the stream with an `Err` item's status.
#[derive(Debug)]
pub struct FallibleEncoder;

impl Encoder for FallibleEncoder {
    type Item = Result<DynamicMessage, Status>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        DynamicEncoder.encode(item?, dst)
    }
}

/// One channel per backend URL.
#[derive(Debug, Clone)]
pub struct Backends {
    channels: HashMap<String, Channel>,
    max_response_bytes: usize,
}

impl Backends {
    /// Lazy channels to every URL of `map` (nothing connects until the first call,
    /// so the gateway starts even when a backend is down).
    pub fn new(map: &BackendMap, connect_timeout: Duration, max_response_bytes: usize) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        for url in map.urls() {
            let endpoint = Endpoint::from_shared(url.to_owned())
                .map_err(|e| anyhow::anyhow!("backend URL {url:?}: {e}"))?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30));
            channels.insert(url.to_owned(), endpoint.connect_lazy());
        }
        Ok(Self { channels, max_response_bytes })
    }

    /// The channel of `url` (every route's backend has one).
    pub fn channel(&self, url: &str) -> Channel {
        self.channels.get(url).cloned().expect("every routed backend has a channel")
    }

    /// The response size limit.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// Every backend URL with its channel.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Channel)> {
        self.channels.iter().map(|(url, channel)| (url.as_str(), channel))
    }

    /// Calls a unary method.
    pub async fn unary(&self, route: &Route, request: tonic::Request<DynamicMessage>) -> Result<tonic::Response<DynamicMessage>, Status> {
        let mut grpc = self.ready(route).await?;
        grpc.unary(request, route.path_and_query(), DynamicCodec::new(route.rpc.output())).await
    }

    /// Calls a server-streaming method.
    pub async fn server_streaming(
        &self,
        route: &Route,
        request: tonic::Request<DynamicMessage>,
    ) -> Result<tonic::Response<Streaming<DynamicMessage>>, Status> {
        let mut grpc = self.ready(route).await?;
        grpc.server_streaming(request, route.path_and_query(), DynamicCodec::new(route.rpc.output())).await
    }

    /// Calls a client-streaming method on a task of its own, with the
    /// messages of `request`; an `Err` item fails the call (see
    /// [`FallibleStreamCodec`]). The task runs to the call's end even when
    /// the caller goes away: dropping the call instead would make hyper reset
    /// it with CANCEL, which a tonic server reads as the end of the stream.
    pub fn spawn_client_streaming<S>(
        &self,
        route: &Route,
        request: tonic::Request<S>,
    ) -> JoinHandle<Result<tonic::Response<DynamicMessage>, Status>>
    where
        S: Stream<Item = Result<DynamicMessage, Status>> + Send + 'static,
    {
        let (channel, max_response_bytes) = (self.channel(&route.backend), self.max_response_bytes);
        let (path, codec, label) = (route.path_and_query(), FallibleStreamCodec::new(route.rpc.output()), service_label(route).to_owned());
        let call = async move {
            let mut grpc = ready(channel, max_response_bytes, &label).await?;
            grpc.client_streaming(request, path, codec).await
        };
        tokio::spawn(call.in_current_span())
    }

    async fn ready(&self, route: &Route) -> Result<Grpc<Channel>, Status> {
        ready(self.channel(&route.backend), self.max_response_bytes, service_label(route)).await
    }
}

/// A client of `channel`, once it can take a call; `label` names the backend in errors.
async fn ready(channel: Channel, max_response_bytes: usize, label: &str) -> Result<Grpc<Channel>, Status> {
    // A backend answer larger than this is refused rather than turned into an even larger JSON body.
    let mut grpc = Grpc::new(channel).max_decoding_message_size(max_response_bytes);
    grpc.ready().await.map_err(|e| Status::unavailable(format!("the {label} backend is unavailable: {e}")))?;
    Ok(grpc)
}

/// `crm.profiles.v1` for messages about a backend.
pub fn service_label(route: &Route) -> &str {
    route.rpc.parent_service().package_name()
}
