//! The `crm-campaigns` binary: flags and `CRM_*` settings, then the kit's service main.

crm_kit::service_main!(crm_campaigns::config::Config, crm_campaigns::startup::SPEC, crm_campaigns::startup::Application::build);
