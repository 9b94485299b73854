//! Calls to the backends: one lazily connected tonic `Channel` per backend
//! URL (a Channel multiplexes calls over HTTP/2 and reconnects by itself),
//! and a codec over `prost_reflect::DynamicMessage` so that any method of
//! the descriptor set can be called without generated client code.

use std::{collections::HashMap, time::Duration};

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::{
    Status,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming},
    transport::{Channel, Endpoint},
};

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

    async fn ready(&self, route: &Route) -> Result<Grpc<Channel>, Status> {
        // A backend answer larger than this is refused rather than turned into an even larger JSON body.
        let mut grpc = Grpc::new(self.channel(&route.backend)).max_decoding_message_size(self.max_response_bytes);
        grpc.ready().await.map_err(|e| Status::unavailable(format!("the {} backend is unavailable: {e}", service_label(route))))?;
        Ok(grpc)
    }
}

/// `crm.profiles.v1` for messages about a backend.
pub fn service_label(route: &Route) -> &str {
    route.rpc.parent_service().package_name()
}
