//! gRPC handlers: each authorizes, converts the request (`crate::wire`),
//! calls a use case in `crate::app`, and converts the result back.
//!
//! # Layout
//! - `campaigns`: CampaignService.
//! - `contact_policy`: ContactPolicyService.
//! - `templates`: TemplateService, including RenderPreview.
//! - `providers`: ProviderService.
//! - `callbacks`: ProviderCallbackService — receipts and inbound messages, verified per provider.
//! - `tracking`: TrackingService — the pixel and links of tracked emails, without a login.
//! - `unsubscribes`: UnsubscribeService — the links in marketing messages, without a login.
//! - `journeys`: JourneyService — journeys' definitions (checked on save), versions, state and runs.
//! - `coupons`: CouponService — single-use coupons, issued and redeemed once.
//! - `attribution`: AttributionService — custom goals recorded; what campaigns and journeys earned.
//! - `questionnaires`: QuestionnaireService — surveys journeys send; invitations answered by signed link.
//! - `loyalty`: LoyaltyService — customers' points: grants, redemptions, expiry, the ledger.
//! - `holidays`: HolidayService — the tenant's holiday calendar (built-in lunar and Gregorian holidays, its own).
//! - `devices`: DeviceService — the devices FCM pushes go to; customers manage their own.
//! - `deliveries`: DeliveryService — SendNotice and the sent log, masked for callers without `pii`.

mod attribution;
mod callbacks;
mod campaigns;
mod contact_policy;
mod coupons;
mod deliveries;
mod devices;
mod holidays;
mod journeys;
mod loyalty;
mod providers;
mod questionnaires;
mod templates;
mod tracking;
mod unsubscribes;

pub use attribution::AttributionApi;
pub use callbacks::CallbackApi;
pub use campaigns::CampaignApi;
pub use contact_policy::ContactPolicyApi;
pub use coupons::CouponApi;
pub use deliveries::DeliveryApi;
pub use devices::DeviceApi;
pub use holidays::HolidayApi;
pub use journeys::JourneyApi;
pub use loyalty::LoyaltyApi;
pub use providers::ProviderApi;
pub use questionnaires::QuestionnaireApi;
pub use templates::TemplateApi;
pub use tracking::TrackingApi;
pub use unsubscribes::UnsubscribeApi;
