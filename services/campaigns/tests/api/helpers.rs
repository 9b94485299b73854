//! `spawn_app()`: campaigns in-process, a real profiles process and a real
//! SMTP server (aiosmtpd), each test with fresh databases.

use std::{collections::BTreeMap, time::Duration};

use crm_campaigns::{config::Config, startup::Application};
use crm_kit::config::KitConfig;
use crm_proto::crm::{
    campaigns::v1::{
        self as pb, campaign_service_client::CampaignServiceClient, contact_policy_service_client::ContactPolicyServiceClient,
        delivery_service_client::DeliveryServiceClient, provider_service_client::ProviderServiceClient,
        template_service_client::TemplateServiceClient,
    },
    common::v1::{EmailAddress, PhoneNumber},
    profiles::v1::{self as profiles, customer_service_client::CustomerServiceClient},
};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::{TestDb, fresh_database},
    init_test_logs,
    process::{ServiceProcess, binary, spawn_service},
    smtp::SmtpSink,
};
use tokio::sync::oneshot;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

/// Campaigns for one tenant, beside its peers.
pub struct TestApp {
    pub clients: Clients,
    pub smtp: SmtpSink,
    pub db: TestDb,
    /// A tickets process, when started with [`spawn_app_with_tickets`].
    pub tickets: Option<ServiceProcess>,
    /// The profiles process (a test may stop and restart it on the same port and database).
    pub profiles: Option<ServiceProcess>,
    pub profiles_db: TestDb,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// A connection to the campaigns database as its owner, looking as the
    /// tenant (FORCE ROW LEVEL SECURITY binds the owner too): for what the
    /// API does not show, or to move time back.
    pub async fn owner(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let mut owner = sqlx::PgConnection::connect(&self.db.owner_url).await.unwrap();
        sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(self.tenant.to_string()).execute(&mut owner).await.unwrap();
        owner
    }
}

impl std::ops::Deref for TestApp {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.clients
    }
}

/// Typed clients of campaigns (and profiles, for recipients) for one tenant.
pub struct Clients {
    pub tenant: Uuid,
    pub admin_token: String,
    pub templates: TemplateServiceClient<Channel>,
    pub providers: ProviderServiceClient<Channel>,
    pub deliveries: DeliveryServiceClient<Channel>,
    pub customers: CustomerServiceClient<Channel>,
    /// The campaigns service.
    pub channel: Channel,
    /// Where the tenant's email provider points.
    smtp_port: u16,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The settings tests run with: relays on loopback allowed, quick retries.
pub fn test_config(db: &TestDb, profiles_url: &str) -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        profiles_url: profiles_url.to_owned(),
        profiles_timeout_ms: 2000,
        tickets_url: "http://127.0.0.1:9".into(),
        delivery_concurrency: 16,
        delivery_lease_ms: 10_000,
        delivery_poll_ms: 200,
        loyalty_expiry_poll_ms: 200,
        journey_poll_ms: 100,
        occasion_poll_ms: 200,
        delivery_max_attempts: 3,
        delivery_retry_base_ms: 50,
        public_url: None,
        kit: KitConfig {
            credentials_key: Some("test credentials key".into()),
            ..KitConfig::for_tests(&db.app_url, &db.owner_url, &jwt_secret())
        },
    }
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn_suite(false, customise).await
}

/// Campaigns with a real tickets process too (its event stream feeds the open-complaint rule).
pub async fn spawn_app_with_tickets() -> TestApp {
    spawn_suite(true, |_| {}).await
}

/// Campaigns with a real tickets process, with `customise`d settings.
pub async fn spawn_app_with_tickets_and(customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn_suite(true, customise).await
}

async fn spawn_suite(with_tickets: bool, customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn_suite_with(with_tickets, &[], customise).await
}

/// Campaigns beside a profiles process started with `profiles_env` (e.g. its JetStream relay).
pub async fn spawn_app_with_profiles_env(profiles_env: &[(&str, String)], customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn_suite_with(false, profiles_env, customise).await
}

async fn spawn_suite_with(with_tickets: bool, profiles_env: &[(&str, String)], customise: impl FnOnce(&mut Config)) -> TestApp {
    init_test_logs();
    let profiles_db = fresh_database("profiles").await.unwrap();
    let profiles = spawn_service(binary("crm-profiles"), &profiles_db, profiles_env).await;
    let tickets = match with_tickets {
        true => {
            let tickets_db = fresh_database("tickets").await.unwrap();
            Some(spawn_service(binary("crm-tickets"), &tickets_db, &[("CRM_PROFILES_URL", profiles.url.clone())]).await)
        }
        false => None,
    };
    let smtp = SmtpSink::start().await;
    let db = fresh_database("campaigns").await.unwrap();
    let mut config = test_config(&db, &profiles.url);
    if let Some(t) = &tickets {
        config.tickets_url = t.url.clone();
    }
    customise(&mut config);
    let app = Application::build(config).await.expect("campaigns builds");
    let port = app.port();
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let clients = Clients::connect(&format!("http://127.0.0.1:{port}"), profiles.channel.clone(), Uuid::now_v7(), smtp.port).await;
    TestApp { clients, smtp, db, tickets, profiles: Some(profiles), profiles_db, stop: Some(stop) }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A recipient to create in profiles.
#[derive(Debug, Clone, Default)]
pub struct Person<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub phone: &'a str,
    pub locale: &'a str,
    pub time_zone: &'a str,
    pub email_opt_in: bool,
    pub sms_opt_in: bool,
    pub tags: &'a [&'a str],
}

impl Clients {
    /// Clients of campaigns at `url` and of profiles on `profiles`, for `tenant`.
    pub async fn connect(url: &str, profiles: Channel, tenant: Uuid, smtp_port: u16) -> Self {
        let channel = Channel::from_shared(url.to_owned()).unwrap().connect().await.unwrap();
        Self {
            tenant,
            admin_token: token(tenant, &["admin"]),
            templates: TemplateServiceClient::new(channel.clone()),
            providers: ProviderServiceClient::new(channel.clone()),
            deliveries: DeliveryServiceClient::new(channel.clone()),
            customers: CustomerServiceClient::new(profiles),
            channel,
            smtp_port,
        }
    }

    pub fn admin<T>(&self, message: T) -> Request<T> {
        with_token(message, &self.admin_token)
    }

    pub fn as_roles<T>(&self, message: T, roles: &[&str]) -> Request<T> {
        with_token(message, &token(self.tenant, roles))
    }

    /// Creates a customer in profiles and returns its name.
    pub async fn customer(&self, p: Person<'_>) -> String {
        let state = |opted_in| if opted_in { profiles::ConsentState::OptedIn } else { profiles::ConsentState::Unspecified };
        let customer = profiles::Customer {
            display_name: p.name.into(),
            emails: if p.email.is_empty() {
                vec![]
            } else {
                vec![EmailAddress { address: p.email.into(), label: String::new(), primary: true }]
            },
            phones: if p.phone.is_empty() {
                vec![]
            } else {
                vec![PhoneNumber { number: p.phone.into(), label: String::new(), primary: true }]
            },
            locale: p.locale.into(),
            time_zone: p.time_zone.into(),
            tags: p.tags.iter().map(|t| (*t).to_owned()).collect(),
            consent: Some(profiles::Consent {
                email: Some(profiles::ChannelConsent { state: state(p.email_opt_in) as i32, update_time: None }),
                sms: Some(profiles::ChannelConsent { state: state(p.sms_opt_in) as i32, update_time: None }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = self.admin(profiles::CreateCustomerRequest { customer: Some(customer), request_id: String::new() });
        self.customers.clone().create_customer(request).await.unwrap().into_inner().customer.unwrap().name
    }

    /// Configures the tenant's email provider: the test SMTP server.
    pub async fn email_provider(&self) -> pb::Provider {
        self.email_provider_paced(0).await
    }

    /// The tenant's email provider, sending at most `per_second` (0: no limit).
    pub async fn email_provider_paced(&self, per_second: i32) -> pb::Provider {
        self.email_provider_with(per_second, |_| {}).await.unwrap()
    }

    /// Configures the tenant's email provider, the test SMTP server, with `customise`d settings.
    pub async fn email_provider_with(
        &self,
        per_second: i32,
        customise: impl FnOnce(&mut pb::SmtpSettings),
    ) -> Result<pb::Provider, Status> {
        let mut smtp = pb::SmtpSettings {
            host: "127.0.0.1".into(),
            port: i32::from(self.smtp_port),
            security: pb::SmtpSecurity::None as i32,
            from_address: "notices@crm.example".into(),
            from_name: "CRM Notices".into(),
            ..Default::default()
        };
        customise(&mut smtp);
        let provider = pb::Provider {
            display_name: "Test relay".into(),
            channel: pb::Channel::Email as i32,
            max_per_second: per_second,
            settings: Some(pb::provider::Settings::Smtp(smtp)),
            ..Default::default()
        };
        let request = self.admin(pb::CreateProviderRequest { provider: Some(provider), request_id: String::new() });
        Ok(self.providers.clone().create_provider(request).await?.into_inner().provider.unwrap())
    }

    /// Creates a template as admin.
    pub async fn create_template(&self, template: pb::Template) -> Result<pb::Template, Status> {
        let request = self.admin(pb::CreateTemplateRequest { template: Some(template), request_id: String::new() });
        Ok(self.templates.clone().create_template(request).await?.into_inner().template.unwrap())
    }

    /// Sends a notice as an agent.
    pub async fn send_notice(
        &self,
        template: &str,
        customer: &str,
        vars: &[(&str, &str)],
        request_id: &str,
    ) -> Result<pb::Delivery, Status> {
        let request = self.as_roles(
            pb::SendNoticeRequest {
                template: template.into(),
                customer: customer.into(),
                variables: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
                request_id: request_id.into(),
            },
            &["agent"],
        );
        Ok(self.deliveries.clone().send_notice(request).await?.into_inner().delivery.unwrap())
    }

    /// Gets a delivery as admin.
    pub async fn delivery(&self, name: &str) -> pb::Delivery {
        let request = self.admin(pb::GetDeliveryRequest { name: name.into() });
        self.deliveries.clone().get_delivery(request).await.unwrap().into_inner().delivery.unwrap()
    }

    /// Waits (at most 20 s) until delivery `name` is no longer QUEUED or SUBMITTING.
    pub async fn settled(&self, name: &str) -> pb::Delivery {
        for _ in 0..400 {
            let d = self.delivery(name).await;
            let status = pb::DeliveryStatus::try_from(d.status).unwrap();
            if !matches!(status, pb::DeliveryStatus::Queued | pb::DeliveryStatus::Submitting) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not settle within 20 s");
    }

    /// Lists deliveries with `filter` as `roles`.
    pub async fn list_deliveries(&self, filter: &str, roles: &[&str]) -> Result<Vec<pb::Delivery>, Status> {
        let request = self.as_roles(pb::ListDeliveriesRequest { page_size: 0, page_token: String::new(), filter: filter.into() }, roles);
        Ok(self.deliveries.clone().list_deliveries(request).await?.into_inner().deliveries)
    }
}

/// An email template with one content in `locale`.
pub fn email_template(purpose: pb::Purpose, subject: &str, body: &str, locked: &[&str]) -> pb::Template {
    pb::Template {
        display_name: "Notice".into(),
        channel: pb::Channel::Email as i32,
        purpose: purpose as i32,
        contents: vec![pb::TemplateContent {
            locale: "en".into(),
            subject: subject.into(),
            body: body.into(),
            html_body: String::new(),
            data: BTreeMap::new(),
        }],
        default_locale: "en".into(),
        locked_variables: locked.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    }
}

/// Asserts the code and ErrorInfo reason of a failed call.
pub fn assert_error<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, reason: &str) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    let info = status.get_error_details().error_info().cloned().unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    assert_eq!(info.reason, reason, "{status:?}");
    status
}

/// The BadRequest violations of a failed call, as (field, reason) pairs.
pub fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| (v.field.clone(), v.reason.clone())).collect())
        .unwrap_or_default()
}

impl Clients {
    /// Creates a DRAFT campaign as a marketer.
    pub async fn create_campaign(&self, template: &str, filter: &str, variables: &[(&str, &str)]) -> Result<pb::Campaign, Status> {
        let campaign = pb::Campaign {
            display_name: "Autumn offer".into(),
            template: template.into(),
            audience: Some(pb::Audience { filter: filter.into() }),
            variables: variables.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        };
        let request = self.as_roles(pb::CreateCampaignRequest { campaign: Some(campaign), request_id: String::new() }, &["marketer"]);
        Ok(self.campaigns().create_campaign(request).await?.into_inner().campaign.unwrap())
    }

    /// A client of ContactPolicyService.
    pub fn contact_policy(&self) -> ContactPolicyServiceClient<Channel> {
        ContactPolicyServiceClient::new(self.channel.clone())
    }

    /// A client of CampaignService.
    pub fn campaigns(&self) -> CampaignServiceClient<Channel> {
        CampaignServiceClient::new(self.channel.clone())
    }

    /// Gets a campaign as admin.
    pub async fn campaign(&self, name: &str) -> pb::Campaign {
        self.campaigns()
            .get_campaign(self.admin(pb::GetCampaignRequest { name: name.into() }))
            .await
            .unwrap()
            .into_inner()
            .campaign
            .unwrap()
    }

    /// Waits (at most 30 s) until campaign `name` is in `state`.
    pub async fn campaign_in(&self, name: &str, state: pb::CampaignState) -> pb::Campaign {
        for _ in 0..600 {
            let c = self.campaign(name).await;
            if c.state == state as i32 {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not reach {state:?} within 30 s: {:?}", self.campaign(name).await);
    }
}

impl Clients {
    /// Creates and publishes `journey` as a marketer; the journey as published.
    pub async fn publish_journey(&self, journey: pb::Journey) -> pb::Journey {
        let mut journeys = pb::journey_service_client::JourneyServiceClient::new(self.channel.clone());
        let request = self.as_roles(pb::CreateJourneyRequest { journey: Some(journey), request_id: String::new() }, &["marketer"]);
        let draft = journeys.create_journey(request).await.unwrap().into_inner().journey.unwrap();
        let request = self.as_roles(pb::PublishJourneyRequest { name: draft.name, etag: String::new() }, &["marketer"]);
        journeys.publish_journey(request).await.unwrap().into_inner().journey.unwrap()
    }

    /// Creates `questionnaire` as a marketer.
    pub async fn create_questionnaire(&self, questionnaire: pb::Questionnaire) -> pb::Questionnaire {
        let mut client = pb::questionnaire_service_client::QuestionnaireServiceClient::new(self.channel.clone());
        let request = self.as_roles(pb::CreateQuestionnaireRequest { questionnaire: Some(questionnaire) }, &["marketer"]);
        client.create_questionnaire(request).await.unwrap().into_inner().questionnaire.unwrap()
    }
}
