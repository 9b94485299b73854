use clap::Parser;
use crm_gateway::{config::Config, startup::Application};
use crm_kit::server::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = crm_kit::telemetry::init("gateway", config.log_format)?;
    let result = async { Application::build(config).await?.run_until_stopped(shutdown_signal()).await }.await;
    if let Err(err) = &result {
        tracing::error!(error = ?err, "gateway failed");
    }
    // Dropping the guard would not flush buffered spans.
    telemetry.shutdown();
    result
}
