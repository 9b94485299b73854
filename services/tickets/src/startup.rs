//! Builds the tickets service: the kit's runtime plus TicketService, the
//! profiles client and the event stream.

use std::time::Duration;

use crm_kit::server::{Kit, Server, ServiceSpec};
use crm_proto::crm::tickets::v1::{
    article_service_server::ArticleServiceServer, classification_rule_service_server::ClassificationRuleServiceServer,
    follow_up_service_server::FollowUpServiceServer, report_service_server::ReportServiceServer,
    sla_policy_service_server::SlaPolicyServiceServer, survey_service_server::SurveyServiceServer, team_service_server::TeamServiceServer,
    ticket_service_server::TicketServiceServer, ticket_settings_service_server::TicketSettingsServiceServer,
};
use sqlx::migrate::Migrator;

use crate::{
    api::{ArticleApi, FollowUpApi, ReportApi, RuleApi, SettingsApi, SlaApi, SurveyApi, TeamApi, TicketApi},
    app::App,
    config::Config,
    profiles::ProfilesClient,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the kit needs to know about this service.
pub static SPEC: ServiceSpec = ServiceSpec {
    name: "tickets",
    error_domain: "tickets.crm",
    migrator: &MIGRATOR,
    // Customers answer surveys with the one-time token in the request, without a login.
    token_methods: &["/crm.tickets.v1.SurveyService/AnswerSurvey"],
};

/// The wiring of the tickets service: [`Application::build`] returns the kit's
/// bound [`Server`], which tells its `port()` and serves with `run_until_stopped`.
pub struct Application;

impl Application {
    /// Connects, migrates and binds; the server starts with [`Server::run_until_stopped`].
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let profiles = ProfilesClient::new(&config.profiles_url, Duration::from_millis(config.profiles_timeout_ms))?;
        let kit = Kit::connect(&SPEC, config.kit).await?;
        let app = App::new(kit.pool.clone(), chrono::Duration::minutes(config.follow_up_delay_minutes));
        let survey_key = crm_kit::server::derived_key(&kit.config, b"crm survey tokens");
        let services = crm_kit::register_services!(
            kit,
            TicketServiceServer::new(TicketApi::new(app.clone(), kit.page_tokens.clone(), profiles)),
            TeamServiceServer::new(TeamApi::new(app.clone(), kit.page_tokens.clone())),
            ClassificationRuleServiceServer::new(RuleApi::new(kit.pool.clone(), kit.page_tokens.clone())),
            SlaPolicyServiceServer::new(SlaApi::new(app.clone(), kit.page_tokens.clone())),
            FollowUpServiceServer::new(FollowUpApi::new(app.clone(), kit.page_tokens.clone())),
            SurveyServiceServer::new(SurveyApi::new(kit.pool.clone(), survey_key)),
            ArticleServiceServer::new(ArticleApi::new(kit.pool.clone(), kit.page_tokens.clone())),
            ReportServiceServer::new(ReportApi::new(kit.pool.clone())),
            TicketSettingsServiceServer::new(SettingsApi::new(app.clone())),
        );
        let tokens = crm_kit::auth::ServiceTokens::new(&kit.config, SPEC.name);
        let transport = kit.follow_transport().await?;
        crate::jobs::erasure::spawn(app.clone(), &config.profiles_url, transport, tokens, kit.shutdown_receiver())?;
        crate::jobs::sla::spawn(app, Duration::from_millis(config.sla_check_interval_ms), kit.shutdown_receiver());
        kit.serve(services, config.listen_addr).await
    }
}
