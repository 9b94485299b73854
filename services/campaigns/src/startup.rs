//! Builds the campaigns service: the kit's runtime plus TemplateService,
//! ProviderService, DeliveryService, CampaignService, ContactPolicyService and
//! UnsubscribeService, DeviceService, HolidayService, JourneyService, LoyaltyService, CouponService, AttributionService, QuestionnaireService, TrackingService, the profiles client,
//! the delivery and campaign jobs and the event stream.

use std::time::Duration;

use crm_kit::server::{Kit, Server, ServiceSpec};
use crm_proto::crm::campaigns::v1::{
    attribution_service_server::AttributionServiceServer, campaign_service_server::CampaignServiceServer,
    contact_policy_service_server::ContactPolicyServiceServer, coupon_service_server::CouponServiceServer,
    delivery_service_server::DeliveryServiceServer, device_service_server::DeviceServiceServer,
    holiday_service_server::HolidayServiceServer, journey_service_server::JourneyServiceServer,
    loyalty_service_server::LoyaltyServiceServer, provider_callback_service_server::ProviderCallbackServiceServer,
    provider_service_server::ProviderServiceServer, questionnaire_service_server::QuestionnaireServiceServer,
    template_service_server::TemplateServiceServer, tracking_service_server::TrackingServiceServer,
    unsubscribe_service_server::UnsubscribeServiceServer,
};
use sqlx::migrate::Migrator;

use crate::{
    api::{
        AttributionApi, CallbackApi, CampaignApi, ContactPolicyApi, CouponApi, DeliveryApi, DeviceApi, HolidayApi, JourneyApi, LoyaltyApi,
        ProviderApi, QuestionnaireApi, TemplateApi, TrackingApi, UnsubscribeApi,
    },
    app::App,
    channels::Senders,
    config::Config,
    domain::delivery::RetryPolicy,
    jobs,
    links::Links,
    profiles::ProfilesClient,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the kit needs to know about this service.
pub static SPEC: ServiceSpec = ServiceSpec {
    name: "campaigns",
    error_domain: "campaigns.crm",
    migrator: &MIGRATOR,
    token_methods: &[
        // Links and callbacks carry their own signed credential instead of a login.
        "/crm.campaigns.v1.UnsubscribeService/GetUnsubscribeLink",
        "/crm.campaigns.v1.UnsubscribeService/Unsubscribe",
        "/crm.campaigns.v1.ProviderCallbackService/ReceiveProviderCallback",
        "/crm.campaigns.v1.TrackingService/OpenTrackingPixel",
        "/crm.campaigns.v1.TrackingService/FollowTrackedLink",
        "/crm.campaigns.v1.QuestionnaireService/GetInvitation",
        "/crm.campaigns.v1.QuestionnaireService/AnswerInvitation",
    ],
};

/// The wiring of the campaigns service: [`Application::build`] returns the
/// kit's bound [`Server`], which tells its `port()` and serves with `run_until_stopped`.
pub struct Application;

impl Application {
    /// Connects, migrates and binds, and starts the delivery job; the server
    /// starts with [`Server::run_until_stopped`].
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let profiles = ProfilesClient::new(&config.profiles_url, Duration::from_millis(config.profiles_timeout_ms))?;
        let kit = Kit::connect(&SPEC, config.kit).await?;
        let cipher = kit.secret_cipher();
        let retry = RetryPolicy {
            max_attempts: config.delivery_max_attempts.max(1),
            base: Duration::from_millis(config.delivery_retry_base_ms),
            max_delay: Duration::from_secs(600),
        };
        let senders = Senders::new(cipher, kit.config.outbound_allow_private);
        let links = Links::new(|purpose| crm_kit::server::derived_key(&kit.config, purpose), config.public_url.as_deref());
        let app = App::new(kit.pool.clone(), senders, retry, Duration::from_millis(config.delivery_lease_ms), links);
        let tokens = crm_kit::auth::ServiceTokens::new(&kit.config, SPEC.name);
        let opt_outs = jobs::unsubscribes::OptOuts::new(app.clone(), profiles.clone(), tokens.clone());
        let services = crm_kit::register_services!(
            kit,
            TemplateServiceServer::new(TemplateApi::new(app.clone(), kit.page_tokens.clone(), profiles.clone())),
            ProviderServiceServer::new(ProviderApi::new(app.clone(), kit.page_tokens.clone())),
            DeliveryServiceServer::new(DeliveryApi::new(app.clone(), kit.page_tokens.clone(), profiles.clone())),
            CampaignServiceServer::new(CampaignApi::new(app.clone(), kit.page_tokens.clone(), profiles.clone(), tokens.clone())),
            ContactPolicyServiceServer::new(ContactPolicyApi::new(app.clone())),
            DeviceServiceServer::new(DeviceApi::new(app.clone(), kit.page_tokens.clone())),
            HolidayServiceServer::new(HolidayApi::new(app.clone())),
            JourneyServiceServer::new(JourneyApi::new(app.clone(), kit.page_tokens.clone(), profiles.clone())),
            LoyaltyServiceServer::new(LoyaltyApi::new(app.clone(), kit.page_tokens.clone(), profiles.clone())),
            CouponServiceServer::new(CouponApi::new(app.clone(), kit.page_tokens.clone(), profiles.clone())),
            AttributionServiceServer::new(AttributionApi::new(app.clone(), profiles.clone())),
            QuestionnaireServiceServer::new(QuestionnaireApi::new(app.clone())),
            UnsubscribeServiceServer::new(UnsubscribeApi::new(app.clone(), opt_outs.clone())),
            TrackingServiceServer::new(TrackingApi::new(app.clone())),
            ProviderCallbackServiceServer::new(CallbackApi::new(app.clone(), opt_outs.clone(), kit.page_tokens.clone())),
        );
        opt_outs.spawn(kit.shutdown_receiver());
        let recipients = jobs::delivery::Recipients { profiles: profiles.clone(), tokens: tokens.clone() };
        jobs::campaigns::spawn(
            app.clone(),
            profiles.clone(),
            tokens.clone(),
            Duration::from_millis(config.delivery_poll_ms),
            kit.shutdown_receiver(),
        );
        // Other services' events: their Subscribe streams, or JetStream with CRM_FOLLOW_JETSTREAM.
        let transport = kit.follow_transport().await?;
        jobs::complaints::spawn(app.clone(), &config.tickets_url, transport.clone(), tokens.clone(), kit.shutdown_receiver())?;
        jobs::erasure::spawn(app.clone(), &config.profiles_url, transport, tokens.clone(), kit.shutdown_receiver())?;
        jobs::journeys::Runner::new(app.clone(), profiles.clone(), tokens.clone())
            .spawn(Duration::from_millis(config.journey_poll_ms), kit.shutdown_receiver());
        jobs::occasions::Occasions::new(app.clone(), profiles.clone(), tokens.clone())
            .spawn(Duration::from_millis(config.occasion_poll_ms), kit.shutdown_receiver());
        jobs::ab_tests::spawn(app.clone(), Duration::from_millis(config.occasion_poll_ms), kit.shutdown_receiver());
        let ticket_surveys = crate::tickets::TicketSurveys::new(&config.tickets_url, Duration::from_millis(config.profiles_timeout_ms))?;
        let poll = Duration::from_millis(config.journey_poll_ms);
        jobs::ticket_answers::spawn(app.clone(), ticket_surveys, tokens.clone(), poll, kit.shutdown_receiver());
        jobs::loyalty::spawn(app.clone(), Duration::from_millis(config.loyalty_expiry_poll_ms), kit.shutdown_receiver());
        let settings =
            jobs::delivery::Settings { concurrency: config.delivery_concurrency, poll: Duration::from_millis(config.delivery_poll_ms) };
        jobs::delivery::spawn(app, recipients, settings, kit.shutdown_receiver());
        kit.serve(services, config.listen_addr).await
    }
}
