use clap::Parser;
use crm_tickets::{
    config::Config,
    startup::{Application, SPEC},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = crm_kit::telemetry::init(SPEC.name, config.kit.log_format)?;
    let result = async { Application::build(config).await?.run_until_stopped(crm_kit::server::shutdown_signal()).await }.await;
    if let Err(err) = &result {
        tracing::error!(error = ?err, "tickets service failed");
    }
    telemetry.shutdown();
    result
}
