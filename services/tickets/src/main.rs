//! The `crm-tickets` binary: flags and `CRM_*` settings, then the kit's service main.

crm_kit::service_main!(crm_tickets::config::Config, crm_tickets::startup::SPEC, crm_tickets::startup::Application::build);
