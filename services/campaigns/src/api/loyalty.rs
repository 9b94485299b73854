//! `crm.campaigns.v1.LoyaltyService`: customers' points. Staff read with
//! `loyalty.read` and book with `loyalty.write`; a customer reads their own
//! account (another's looks like it does not exist). A booking names a
//! customer of profiles (checked with the caller's token) and a request id,
//! which makes it happen once.

use chrono::{SubsecRound, Utc};
use crm_kit::{
    Error,
    auth::{Principal, caller},
    client::Caller,
    fieldmask::UpdateMask,
    pagination::{PageTokenCodec, Pager},
    required, respond,
    time::from_timestamp,
};
use crm_proto::crm::campaigns::v1::{self as pb, loyalty_service_server::LoyaltyService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::{App, loyalty::Booking},
    domain::loyalty::{MAX_POINTS, MAX_REASON},
    domain::loyalty_program::Program,
    permissions,
    profiles::ProfilesClient,
    store::loyalty::ProgramRow,
    wire::loyalty::{PROGRAM_NAME, account_customer, account_name, account_to, entry_to, program_from, program_to},
};

/// Handlers of LoyaltyService.
#[derive(Clone)]
pub struct LoyaltyApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
}

impl LoyaltyApi {
    /// Handlers over `app`, checking customers with `profiles`.
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient) -> Self {
        Self { app, page_tokens, profiles }
    }
}

/// The customer whose account `principal` reads: their own for a customer, any with `loyalty.read`.
fn readable(principal: &Principal, customer: Uuid) -> Result<(), Error> {
    match principal.customer() {
        Some(own) if own == customer => Ok(()),
        Some(_) => Err(Error::NotFound { resource_type: "campaigns.crm/PointsAccount", name: account_name(customer) }),
        None => principal.require(permissions::LOYALTY_READ),
    }
}

/// The points, reason and request id of a booking, checked.
fn booking_fields<'a>(points: i64, reason: &'a str, request_id: &'a str) -> Result<(i64, &'a str, String), Error> {
    let mut violations = Vec::new();
    if !(1..=MAX_POINTS).contains(&points) {
        violations.push(crm_kit::FieldViolation::new("points", "INVALID_POINTS", format!("1 to {MAX_POINTS}")));
    }
    if reason.chars().count() > MAX_REASON {
        violations.push(crm_kit::FieldViolation::new("reason", "INVALID_REASON", format!("at most {MAX_REASON} characters")));
    }
    if request_id.is_empty() || request_id.len() > 128 || !request_id.chars().all(|c| c.is_ascii_graphic()) {
        violations.push(crm_kit::FieldViolation::new(
            "request_id",
            "INVALID_REQUEST_ID",
            "1-128 printable ASCII characters (a UUID is ideal)",
        ));
    }
    match violations.is_empty() {
        true => Ok((points, reason.trim(), format!("requests/{request_id}"))),
        false => Err(Error::InvalidArgument { violations }),
    }
}

#[tonic::async_trait]
impl LoyaltyService for LoyaltyApi {
    #[tracing::instrument(skip_all)]
    async fn get_points_account(
        &self,
        request: Request<pb::GetPointsAccountRequest>,
    ) -> Result<Response<pb::GetPointsAccountResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let customer = account_customer(&request.get_ref().name, "name")?;
            readable(&principal, customer)?;
            let account = self.app.points_account(principal.tenant, customer, Utc::now()).await?;
            Ok(pb::GetPointsAccountResponse { points_account: Some(account_to(&account)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_points_entries(
        &self,
        request: Request<pb::ListPointsEntriesRequest>,
    ) -> Result<Response<pb::ListPointsEntriesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let request = request.get_ref();
            let customer = account_customer(&request.parent, "parent")?;
            readable(&principal, customer)?;
            let pager = Pager::new(&self.page_tokens);
            let scope = [principal.tenant.to_string(), customer.to_string()];
            let page = pager.start(request.page_size, &request.page_token, &["ListPointsEntries", &scope[0], &scope[1]])?;
            let rows = self.app.points_entries(principal.tenant, customer, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |e| e.id);
            Ok(pb::ListPointsEntriesResponse { entries: rows.iter().map(entry_to).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn grant_points(&self, request: Request<pb::GrantPointsRequest>) -> Result<Response<pb::GrantPointsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::LOYALTY_WRITE)?;
            let from = Caller::of(&request);
            let request = request.get_ref();
            let customer = account_customer(&request.account, "account")?;
            let (points, reason, source) = booking_fields(request.points, &request.reason, &request.request_id)?;
            let now = Utc::now();
            let expire_time = match &request.expire_time {
                None => None,
                // Postgres keeps microseconds: a retry's identical timestamp must compare equal to the stored one.
                Some(t) => match from_timestamp(t).map(|t| t.trunc_subsecs(6)).filter(|t| *t > now) {
                    Some(t) => Some(t),
                    None => {
                        return Err(Error::invalid(
                            "expire_time",
                            "INVALID_EXPIRE_TIME",
                            "a time in the future, or unset for points that never expire",
                        ));
                    }
                },
            };
            self.profiles.customer(&from, customer, "account").await?;
            let booking = Booking { customer_id: customer, points, reason, source: &source };
            let (entry, account) = self.app.grant_points(principal.tenant, &booking, expire_time, now).await?;
            Ok(pb::GrantPointsResponse { entry: Some(entry_to(&entry)), points_account: Some(account_to(&account)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn redeem_points(&self, request: Request<pb::RedeemPointsRequest>) -> Result<Response<pb::RedeemPointsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::LOYALTY_WRITE)?;
            let from = Caller::of(&request);
            let request = request.get_ref();
            let customer = account_customer(&request.account, "account")?;
            let (points, reason, source) = booking_fields(request.points, &request.reason, &request.request_id)?;
            self.profiles.customer(&from, customer, "account").await?;
            let booking = Booking { customer_id: customer, points, reason, source: &source };
            let (entry, account) = self.app.redeem_points(principal.tenant, &booking, Utc::now()).await?;
            Ok(pb::RedeemPointsResponse { entry: Some(entry_to(&entry)), points_account: Some(account_to(&account)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_loyalty_program(
        &self,
        request: Request<pb::GetLoyaltyProgramRequest>,
    ) -> Result<Response<pb::GetLoyaltyProgramResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::LOYALTY_READ)?;
            check_program_name(&request.get_ref().name, "name")?;
            Ok(pb::GetLoyaltyProgramResponse { loyalty_program: Some(program_to(&self.app.loyalty_program(principal.tenant).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_loyalty_program(
        &self,
        request: Request<pb::UpdateLoyaltyProgramRequest>,
    ) -> Result<Response<pb::UpdateLoyaltyProgramResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::LOYALTY_CONFIGURE)?;
            let pb::UpdateLoyaltyProgramRequest { loyalty_program, update_mask } = request.into_inner();
            let input = required(loyalty_program, "loyalty_program")?;
            check_program_name(&input.name, "loyalty_program.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), PROGRAM_FIELDS)?.resolve(PROGRAM_FIELDS);
            let edit = |stored: &Program| {
                let mut merged = program_to(&ProgramRow { program: sqlx::types::Json(stored.clone()), revision: 0, update_time: None });
                for path in &paths {
                    copy_field(&mut merged, &input, path);
                }
                program_from(&merged, stored)
            };
            let row = self.app.update_loyalty_program(principal.tenant, &input.etag, edit, Utc::now()).await?;
            Ok(pb::UpdateLoyaltyProgramResponse { loyalty_program: Some(program_to(&row)) })
        })
        .await
    }
}

/// The programme's fields an update may change.
const PROGRAM_FIELDS: &[&str] =
    &["earn_currency_code", "points_per_unit", "earned_points_expire_days", "tier_basis", "tier_window_days", "tiers"];

crm_kit::mask_fields!(pb::LoyaltyProgram;
    "earn_currency_code" => earn_currency_code,
    "points_per_unit" => points_per_unit,
    "earned_points_expire_days" => earned_points_expire_days,
    "tier_basis" => tier_basis,
    "tier_window_days" => tier_window_days,
    "tiers" => tiers,
);

fn check_program_name(name: &str, field: &str) -> Result<(), Error> {
    match name == PROGRAM_NAME {
        true => Ok(()),
        false => Err(Error::invalid(field, "INVALID_NAME", "the name is \"loyaltyProgram\"")),
    }
}
