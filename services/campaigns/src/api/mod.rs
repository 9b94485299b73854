//! gRPC handlers: each authorizes, converts the request (`crate::wire`),
//! calls a use case in `crate::app`, and converts the result back.
//!
//! # Layout
//! - `campaigns`: CampaignService.
//! - `templates`: TemplateService, including RenderPreview.
//! - `providers`: ProviderService.
//! - `deliveries`: DeliveryService — SendNotice and the sent log, masked for callers without `pii`.

mod campaigns;
mod deliveries;
mod providers;
mod templates;

pub use campaigns::CampaignApi;
pub use deliveries::DeliveryApi;
pub use providers::ProviderApi;
pub use templates::TemplateApi;
