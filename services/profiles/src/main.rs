//! The `crm-profiles` binary: flags and `CRM_*` settings, then the kit's service main.

crm_kit::service_main!(crm_profiles::config::Config, crm_profiles::startup::SPEC, crm_profiles::startup::Application::build);
