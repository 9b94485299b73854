//! Profiles, campaigns and a gateway as real processes for one tenant, and
//! the REST calls marketing scenarios make (customers, templates, campaigns).

use std::time::Duration;

use crm_testkit::{
    auth::{claims, token_with},
    database::fresh_database,
    process::{ServiceProcess, binary, spawn_gateway, spawn_service},
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Reply, assert_ok, path};

/// Where campaigns says its links point; [`Marketing::here`] swaps in the gateway's address.
pub const PUBLIC_URL: &str = "https://links.crm.example";

/// Profiles, campaigns and a gateway in front of both, for one tenant.
pub struct Marketing {
    /// The gateway's base URL.
    pub base: String,
    /// A client for it.
    pub http: reqwest::Client,
    /// Tokens of the tenant's administrator and marketer.
    pub admin: String,
    pub marketer: String,
    /// Profiles, campaigns and the gateway.
    pub processes: (ServiceProcess, ServiceProcess, tokio::process::Child),
}

impl Marketing {
    /// Starts the three processes, each with `extra_env` too.
    pub async fn start(extra_env: &[(&str, String)]) -> Self {
        let profiles = spawn_service(binary("crm-profiles"), &fresh_database("profiles").await.unwrap(), extra_env).await;
        let mut campaigns_env = vec![
            ("CRM_PROFILES_URL", profiles.url.clone()),
            ("CRM_TICKETS_URL", "http://127.0.0.1:9".to_owned()),
            ("CRM_PUBLIC_URL", PUBLIC_URL.to_owned()),
            ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned()),
            ("CRM_DELIVERY_POLL_MS", "200".to_owned()),
        ];
        campaigns_env.extend(extra_env.iter().cloned());
        let campaigns = spawn_service(binary("crm-campaigns"), &fresh_database("campaigns").await.unwrap(), &campaigns_env).await;
        let backends = format!("crm.profiles.v1={},crm.campaigns.v1={}", profiles.url, campaigns.url);
        let (gateway, base) = spawn_gateway(&backends, extra_env).await;
        let tenant = Uuid::now_v7();
        Self {
            base,
            http: reqwest::Client::new(),
            admin: token_with(&claims("admin", tenant, &["admin"])),
            marketer: token_with(&claims("mia", tenant, &["marketer"])),
            processes: (profiles, campaigns, gateway),
        }
    }

    pub async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.expect("the gateway answers")).await
    }

    /// A link or callback URL of campaigns, pointed at this gateway.
    pub fn here(&self, url: &str) -> String {
        url.replacen(PUBLIC_URL, &self.base, 1)
    }

    /// Creates a customer tagged `news` with `fields` (contact details, consent); returns it.
    pub async fn customer(&self, fields: Value) -> Value {
        let mut body = json!({"displayName": "Ada", "tags": ["news"]});
        body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        let created = self.call(&self.admin, Method::POST, "/v1/customers", Some(body)).await;
        assert_ok(&created);
        created.body
    }

    /// Sends a marketing campaign on `channel` to the `news` tag; returns the campaign's path.
    pub async fn campaign(&self, channel: &str, subject: &str) -> String {
        let campaign_path = self.draft_campaign(channel, subject).await;
        assert_ok(&self.call(&self.marketer, Method::POST, &format!("{campaign_path}:start"), Some(json!({}))).await);
        campaign_path
    }

    /// A DRAFT marketing campaign on `channel` to the `news` tag, with its template; returns its path.
    pub async fn draft_campaign(&self, channel: &str, subject: &str) -> String {
        let template = self
            .call(
                &self.marketer,
                Method::POST,
                "/v1/templates",
                Some(json!({"displayName": "News", "channel": channel, "purpose": "PURPOSE_MARKETING", "defaultLocale": "en",
                    "contents": [{"locale": "en", "subject": subject, "body": "Hello {{ customer.display_name }}. Reply STOP to opt out."}]})),
            )
            .await;
        assert_ok(&template);
        let campaign = self
            .call(
                &self.marketer,
                Method::POST,
                "/v1/campaigns",
                Some(json!({"displayName": "November news", "template": template.body["name"], "audience": {"filter": "tags:\"news\""}})),
            )
            .await;
        assert_ok(&campaign);
        path(&campaign.body["name"])
    }

    /// The customer's consent state on `channel` (`email`, `sms`).
    pub async fn consent(&self, customer: &Value, channel: &str) -> Value {
        let read = self.call(&self.admin, Method::GET, &path(&customer["name"]), None).await;
        read.body["consent"][channel]["state"].clone()
    }

    /// The campaign's count `name`, once it is at least `at_least` (within 30 s).
    pub async fn count(&self, campaign: &str, name: &str, at_least: i64) -> i64 {
        let mut n = 0;
        for _ in 0..300 {
            let read = self.call(&self.marketer, Method::GET, campaign, None).await;
            n = read.body["counts"][name].as_str().map_or(0, |v| v.parse().unwrap());
            if n >= at_least {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        n
    }
}
