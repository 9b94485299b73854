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
    pagination::{PageTokenCodec, Pager},
    respond,
    time::from_timestamp,
};
use crm_proto::crm::campaigns::v1::{self as pb, loyalty_service_server::LoyaltyService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::{App, loyalty::Booking},
    domain::loyalty::{MAX_POINTS, MAX_REASON},
    permissions,
    profiles::ProfilesClient,
    wire::loyalty::{account_customer, account_name, account_to, entry_to},
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
}
