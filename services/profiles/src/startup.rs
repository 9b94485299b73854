//! Builds the profiles service: the kit's runtime plus CustomerService,
//! RelatedPersonService, PaymentAccountService, CommunicationService,
//! PremisesService, OccurrenceService, TransactionService,
//! RenameRequestService, GradingService, SegmentService, DuplicateService, MergeService, ImportService, ExportService,
//! the event stream, and the grading, segment-sweep, duplicate-scan, import and
//! verification jobs.

use crm_kit::server::{Kit, Server, ServiceSpec};
use crm_proto::crm::profiles::v1::{
    communication_service_server::CommunicationServiceServer, customer_service_server::CustomerServiceServer,
    duplicate_service_server::DuplicateServiceServer, export_service_server::ExportServiceServer,
    grading_service_server::GradingServiceServer, import_service_server::ImportServiceServer, merge_service_server::MergeServiceServer,
    occurrence_service_server::OccurrenceServiceServer, payment_account_service_server::PaymentAccountServiceServer,
    premises_service_server::PremisesServiceServer, related_person_service_server::RelatedPersonServiceServer,
    rename_request_service_server::RenameRequestServiceServer, segment_service_server::SegmentServiceServer,
    transaction_service_server::TransactionServiceServer,
};
use std::time::Duration;

use sqlx::migrate::Migrator;

use crate::{
    api::{
        CommunicationApi, CustomerApi, DuplicateApi, ExportApi, GradingApi, ImportApi, MergeApi, OccurrenceApi, PaymentAccountApi,
        PremisesApi, RelatedPersonApi, RenameRequestApi, SegmentApi, TransactionApi,
    },
    app::App,
    config::Config,
    jobs,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the kit needs to know about this service.
pub static SPEC: ServiceSpec = ServiceSpec { name: "profiles", error_domain: "profiles.crm", migrator: &MIGRATOR, token_methods: &[] };

/// The wiring of the profiles service: [`Application::build`] returns the kit's
/// bound [`Server`], which tells its `port()` and serves with `run_until_stopped`.
pub struct Application;

impl Application {
    /// Connects, migrates and binds; the server starts with [`Server::run_until_stopped`].
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let kit = Kit::connect(&SPEC, config.kit).await?;
        let app = App::new(kit.pool.clone());
        // At least a second, so that a beat every tenth of it stays a tenth of a second or more.
        let export_stale = Duration::from_secs(config.export_stale_secs.max(1));
        let services = crm_kit::register_services!(
            kit,
            CustomerServiceServer::new(CustomerApi::new(app.clone(), kit.page_tokens.clone())),
            RelatedPersonServiceServer::new(RelatedPersonApi::new(app.clone(), kit.page_tokens.clone())),
            PaymentAccountServiceServer::new(PaymentAccountApi::new(app.clone(), kit.page_tokens.clone())),
            CommunicationServiceServer::new(CommunicationApi::new(app.clone(), kit.page_tokens.clone())),
            PremisesServiceServer::new(PremisesApi::new(app.clone(), kit.page_tokens.clone())),
            OccurrenceServiceServer::new(OccurrenceApi::new(app.clone(), kit.page_tokens.clone())),
            TransactionServiceServer::new(TransactionApi::new(app.clone(), kit.page_tokens.clone())),
            RenameRequestServiceServer::new(RenameRequestApi::new(app.clone(), kit.page_tokens.clone())),
            GradingServiceServer::new(GradingApi::new(app.clone())),
            SegmentServiceServer::new(SegmentApi::new(app.clone(), kit.page_tokens.clone())),
            DuplicateServiceServer::new(DuplicateApi::new(app.clone(), kit.page_tokens.clone())),
            MergeServiceServer::new(MergeApi::new(app.clone())),
            ImportServiceServer::new(ImportApi::new(
                app.clone(),
                kit.page_tokens.clone(),
                (config.import_max_bytes, config.import_max_xlsx_bytes),
            )),
            ExportServiceServer::new(ExportApi::new(app.clone(), kit.page_tokens.clone(), config.export_concurrency, export_stale / 10,)),
        );
        jobs::exports::spawn(app.clone(), export_stale, kit.shutdown_receiver());
        jobs::imports::spawn(
            app.clone(),
            Duration::from_millis(config.import_poll_ms),
            Duration::from_millis(config.import_lease_ms),
            Duration::from_secs(config.import_retention_secs),
            kit.shutdown_receiver(),
        );
        jobs::grading::spawn(app.clone(), Duration::from_millis(config.grading_poll_ms), kit.shutdown_receiver());
        jobs::segments::spawn(app.clone(), Duration::from_millis(config.segment_sweep_ms), kit.shutdown_receiver());
        jobs::duplicates::spawn(app.clone(), Duration::from_millis(config.duplicate_scan_ms), kit.shutdown_receiver());
        jobs::verification::spawn(app, Duration::from_millis(config.verification_poll_ms), kit.shutdown_receiver());
        kit.serve(services, config.listen_addr).await
    }
}
