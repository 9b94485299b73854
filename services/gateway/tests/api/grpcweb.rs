//! gRPC-Web (binary and text) over HTTP/1.1, and native gRPC over h2c, on the
//! gateway's port, framed by hand as a browser client would send them.

use base64::Engine;
use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::auth::with_token;
use prost::Message;

use crate::helpers::{TestGateway, spawn_gateway};

/// One length-prefixed gRPC message frame.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend((body.len() as u32).to_be_bytes());
    out.extend(body);
    out
}

/// Splits a gRPC-Web response body into its data messages and its trailers.
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = body[5..5 + len].to_vec();
        if body[0] & 0x80 != 0 {
            trailers.push_str(&String::from_utf8(payload).unwrap());
        } else {
            messages.push(payload);
        }
        body = &body[5 + len..];
    }
    (messages, trailers)
}

async fn get_customer(gw: &TestGateway, name: &str, text: bool, token: Option<&str>) -> (reqwest::header::HeaderMap, Vec<Vec<u8>>, String) {
    let request = frame(&pb::GetCustomerRequest { name: name.to_owned() });
    let (content_type, body) = if text {
        ("application/grpc-web-text", base64::engine::general_purpose::STANDARD.encode(request).into_bytes())
    } else {
        ("application/grpc-web+proto", request)
    };
    let mut call = gw
        .http
        .post(format!("{}/crm.profiles.v1.CustomerService/GetCustomer", gw.base))
        .header("content-type", content_type)
        // grpc-web clients ask for the encoding they can read (browsers: text).
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(token) = token {
        call = call.header("authorization", format!("Bearer {token}"));
    }
    let response = call.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    // The text body is base64 chunks, each padded on its own: decode quantum by quantum.
    let bytes = if text {
        bytes.chunks(4).flat_map(|quantum| base64::engine::general_purpose::STANDARD.decode(quantum).unwrap()).collect()
    } else {
        bytes.to_vec()
    };
    let (messages, trailers) = unframe(&bytes);
    (headers, messages, trailers)
}

#[tokio::test]
async fn grpc_web_binary_and_text_reach_the_backend_with_the_callers_token() {
    let gw = spawn_gateway().await;
    let created = gw.create_customer("Ada", "ada@example.com").await;
    let name = created["name"].as_str().unwrap();

    for text in [false, true] {
        let (headers, messages, trailers) = get_customer(&gw, name, text, Some(&gw.admin_token)).await;
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with(if text { "application/grpc-web-text" } else { "application/grpc-web" }),
            "text={text}: {content_type}"
        );
        assert!(trailers.contains("grpc-status:0"), "text={text}: {trailers:?}");
        let customer = pb::GetCustomerResponse::decode(messages[0].as_slice()).unwrap().customer.unwrap();
        assert_eq!(customer.display_name, "Ada");
    }
}

#[tokio::test]
async fn grpc_web_without_a_token_is_unauthenticated_before_any_backend() {
    let gw = spawn_gateway().await;
    let (headers, messages, trailers) = get_customer(&gw, &format!("customers/{}", uuid::Uuid::now_v7()), false, None).await;
    assert!(messages.is_empty());
    // A trailers-only answer: the status may come in the headers or a trailer frame.
    let status = headers.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or(trailers);
    assert!(status.contains("16"), "{status:?}");
}

#[tokio::test]
async fn native_grpc_over_h2c_is_proxied_too() {
    let gw = spawn_gateway().await;
    gw.create_customer("Ada", "ada@example.com").await;
    let channel = tonic::transport::Channel::from_shared(gw.base.clone()).unwrap().connect().await.unwrap();
    let listed = CustomerServiceClient::new(channel)
        .list_customers(with_token(pb::ListCustomersRequest::default(), &gw.admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers.len(), 1);
}

#[tokio::test]
async fn grpc_callers_share_the_rest_rate_limits_and_get_retry_info() {
    let gw = crate::helpers::spawn_gateway_with(|c| c.rate_limit_per_subject = "read=0.1/1".parse().unwrap()).await;
    let channel = tonic::transport::Channel::from_shared(gw.base.clone()).unwrap().connect().await.unwrap();
    let mut client = CustomerServiceClient::new(channel);
    client.list_customers(with_token(pb::ListCustomersRequest::default(), &gw.admin_token)).await.unwrap();

    let limited = client.list_customers(with_token(pb::ListCustomersRequest::default(), &gw.admin_token)).await.unwrap_err();

    assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    assert!(limited.get_error_details().retry_info().and_then(|r| r.retry_delay).is_some_and(|d| d.as_secs_f64() > 0.0));
}
