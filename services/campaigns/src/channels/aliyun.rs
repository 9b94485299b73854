//! SMS through Aliyun's Short Message Service: the RPC API (version
//! 2017-05-25) signed with HMAC-SHA1 (signature version 1.0): every
//! parameter, sorted and percent-encoded (RFC 3986: space as `%20`, `*` as
//! `%2A`, `~` kept), joined, prefixed with `GET&%2F&` and encoded again, is
//! signed with `<AccessKeySecret>&`.
//!
//! `SendSms` sends an approved template (`TemplateCode`) whose `${…}` slots
//! take `TemplateParam` (JSON): the message's variables. Answers come as
//! JSON with a `Code`: `OK` (with a `BizId`), throttling codes
//! (`isv.BUSINESS_LIMIT_CONTROL`, `Throttling…`), other `isv.` codes (the
//! request is wrong: permanent) and the rest (temporary). The delivery id
//! travels as `OutId`; a message found SUBMITTING after a crash is looked up
//! with `QuerySendDetails` (recipient and send date, in China time) by that
//! `OutId` before it is sent again.

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, FixedOffset, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, Url};
use serde::Deserialize;
use sha1::Sha1;

use super::{
    http::{self, HttpSetupError},
    message::Outgoing,
};
use crate::{domain::delivery::Outcome, store::providers::AliyunSmsSettings};

/// RFC 3986 unreserved characters stay; everything else is encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Aliyun's percent-encoding.
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// The canonical query of `params` and its signature under `secret`.
pub fn sign(params: &BTreeMap<String, String>, secret: &str) -> (String, String) {
    let canonical = params.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&");
    let to_sign = format!("GET&{}&{}", percent_encode("/"), percent_encode(&canonical));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("any key length");
    mac.update(to_sign.as_bytes());
    (canonical, STANDARD.encode(mac.finalize().into_bytes()))
}

/// A number as Aliyun takes it: mainland numbers without +86, others as 00<country code>….
fn aliyun_number(e164: &str) -> String {
    match e164.strip_prefix("+86") {
        Some(national) => national.to_owned(),
        None => e164.strip_prefix('+').map_or_else(|| e164.to_owned(), |rest| format!("00{rest}")),
    }
}

/// Sends through one Aliyun account.
pub struct AliyunSender {
    client: Client,
    endpoint: Url,
    settings: AliyunSmsSettings,
    secret: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: String,
    #[serde(default)]
    sms_send_detail_d_t_os: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(rename = "SmsSendDetailDTO", default)]
    items: Vec<Detail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Detail {
    #[serde(default)]
    out_id: String,
}

impl AliyunSender {
    /// A sender for `settings` with `secret` (the AccessKey secret).
    pub async fn new(settings: &AliyunSmsSettings, secret: Option<String>, allow_private: bool) -> Result<Self, HttpSetupError> {
        let endpoint = http::parse_url(&settings.endpoint, allow_private)?;
        let client = http::pinned_client(&endpoint, allow_private).await?;
        Ok(Self { client, endpoint, settings: settings.clone(), secret: secret.unwrap_or_default() })
    }

    async fn call(&self, action: &str, extra: BTreeMap<String, String>) -> Result<Answer, Outcome> {
        let mut params: BTreeMap<String, String> = [
            ("Action", action.to_owned()),
            ("Version", "2017-05-25".to_owned()),
            ("Format", "JSON".to_owned()),
            ("RegionId", "cn-hangzhou".to_owned()),
            ("AccessKeyId", self.settings.access_key_id.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureVersion", "1.0".to_owned()),
            ("SignatureNonce", uuid::Uuid::new_v4().to_string()),
            ("Timestamp", Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        params.extend(extra);
        let (canonical, signature) = sign(&params, &self.secret);
        let mut url = self.endpoint.clone();
        url.set_path("/");
        url.set_query(Some(&format!("Signature={}&{canonical}", percent_encode(&signature))));
        let response = self.client.get(url).send().await.map_err(|e| http::unanswered(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let answer: Option<Answer> = serde_json::from_str(&text).ok();
        match answer {
            Some(a) if status.is_success() && a.code == "OK" => Ok(a),
            Some(a) => Err(classify(&a.code, &a.message, status, &headers)),
            None if status.is_success() => Err(Outcome::Temporary { error: "Aliyun answered without a JSON body".into() }),
            None => Err(http::failure(status, &headers, &text.chars().take(200).collect::<String>())),
        }
    }

    /// Submits `m`: its variables fill the approved template's slots.
    pub async fn send(&self, m: &Outgoing<'_>) -> Outcome {
        let params = BTreeMap::from([
            ("PhoneNumbers".to_owned(), aliyun_number(m.recipient)),
            ("SignName".to_owned(), self.settings.sign_name.clone()),
            ("TemplateCode".to_owned(), self.settings.template_code.clone()),
            ("TemplateParam".to_owned(), serde_json::to_string(m.variables).unwrap_or_else(|_| "{}".into())),
            ("OutId".to_owned(), m.delivery.to_string()),
        ]);
        match self.call("SendSms", params).await {
            Ok(answer) => Outcome::Accepted { message_id: answer.biz_id },
            Err(outcome) => outcome,
        }
    }

    /// The message `m` if Aliyun has it (sent since `since`), found by its OutId.
    pub async fn find(&self, m: &Outgoing<'_>, since: DateTime<Utc>) -> Option<Outcome> {
        let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8");
        let params = BTreeMap::from([
            ("PhoneNumber".to_owned(), aliyun_number(m.recipient)),
            ("SendDate".to_owned(), since.with_timezone(&china).format("%Y%m%d").to_string()),
            ("PageSize".to_owned(), "50".to_owned()),
            ("CurrentPage".to_owned(), "1".to_owned()),
        ]);
        let answer = self.call("QuerySendDetails", params).await.ok()?;
        let id = m.delivery.to_string();
        answer.sms_send_detail_d_t_os?.items.iter().any(|d| d.out_id == id).then(|| Outcome::Accepted { message_id: format!("OutId:{id}") })
    }
}

/// What an Aliyun answer code means.
fn classify(code: &str, message: &str, status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap) -> Outcome {
    let error = crm_kit::mask::text(&format!("{code}: {message}"));
    if code == "isv.BUSINESS_LIMIT_CONTROL" || code.starts_with("Throttling") {
        Outcome::Throttled { error, retry_after: Duration::from_secs(1) }
    } else if code == "isv.MOBILE_NUMBER_ILLEGAL" {
        // Not a mobile number: a hard bounce.
        Outcome::Bounced { error }
    } else if code.starts_with("isv.") || code.starts_with("InvalidAccessKeyId") || code == "SignatureDoesNotMatch" {
        Outcome::Permanent { error }
    } else if !status.is_success() && !status.is_server_error() && code.is_empty() {
        http::failure(status, headers, message)
    } else {
        Outcome::Temporary { error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_follows_rfc_3986() {
        assert_eq!(percent_encode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9");
    }

    /// The worked example of Aliyun's signature documentation (RPC style,
    /// signature version 1.0), recomputed.
    #[test]
    fn signatures_match_the_documented_example() {
        let params: BTreeMap<String, String> = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (_, signature) = sign(&params, "testsecret");
        assert_eq!(signature, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn numbers_take_aliyuns_form() {
        assert_eq!(aliyun_number("+8613800138000"), "13800138000");
        assert_eq!(aliyun_number("+14155550100"), "0014155550100");
    }
}
