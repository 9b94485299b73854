use clap::Parser;
use crm_kit::server::{run_main, shutdown_signal};
use crm_profiles::{
    config::Config,
    startup::{Application, SPEC},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let kit = config.kit.clone();
    run_main(&SPEC, &kit, || async { Application::build(config).await?.run_until_stopped(shutdown_signal()).await }).await
}
