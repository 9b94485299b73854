//! `crm.campaigns.v1.CouponService`: customers' single-use coupons. Reading
//! needs `coupons.read`; issuing and redeeming `coupons.write`. An issue
//! names a customer of profiles (checked with the caller's token).

use chrono::{SubsecRound, Utc};
use crm_kit::{
    Error, FieldViolation,
    auth::caller,
    client::Caller,
    idempotency::IdempotencyKey,
    money,
    pagination::{PageTokenCodec, Pager},
    required, respond,
    time::from_timestamp,
};
use crm_proto::crm::campaigns::v1::{self as pb, coupon_service_server::CouponService};
use tonic::{Request, Response, Status};

use crate::{
    app::{App, coupons::NewCoupon},
    domain::coupon::{check_validity, normalize},
    permissions,
    profiles::ProfilesClient,
    resources::{COUPON, CUSTOMER},
    wire::coupons::coupon_to,
};

/// The longest description and redemption reference, in characters.
const MAX_TEXT: usize = 200;

/// Handlers of CouponService.
#[derive(Clone)]
pub struct CouponApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
}

impl CouponApi {
    /// Handlers over `app`, checking customers with `profiles`.
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient) -> Self {
        Self { app, page_tokens, profiles }
    }
}

/// The coupon of an issue request, checked (all its problems at once).
fn new_coupon(c: &pb::Coupon) -> Result<NewCoupon, Error> {
    let now = Utc::now().trunc_subsecs(6);
    let mut violations = Vec::new();
    let customer = CUSTOMER.parse(&c.customer, "coupon.customer");
    let value = match c.value.as_ref().map(|m| money::to_minor(m, None)) {
        Some(Ok(v)) if v.minor > 0 => Some(v),
        Some(Err((reason, message))) => {
            violations.push(FieldViolation::new("coupon.value", reason, message));
            None
        }
        _ => {
            violations.push(FieldViolation::new("coupon.value", "INVALID_AMOUNT", "a coupon is worth more than zero"));
            None
        }
    };
    if c.description.chars().count() > MAX_TEXT {
        violations.push(FieldViolation::new("coupon.description", "INVALID_DESCRIPTION", format!("at most {MAX_TEXT} characters")));
    }
    let valid_from = c.valid_from.as_ref().and_then(from_timestamp).map_or(now, |t| t.trunc_subsecs(6));
    let expire_time = c.expire_time.as_ref().and_then(from_timestamp).map(|t| t.trunc_subsecs(6));
    match expire_time {
        None => violations.push(FieldViolation::new("coupon.expire_time", "REQUIRED", "when the coupon expires")),
        Some(expire) => {
            if let Some((field, reason, message)) = check_validity(valid_from, expire, now) {
                violations.push(FieldViolation::new(field, reason, message));
            }
        }
    }
    let customer_id = match customer {
        Ok(id) => Some(id),
        Err(Error::InvalidArgument { violations: found }) => {
            violations.extend(found);
            None
        }
        Err(other) => return Err(other),
    };
    match (violations.is_empty(), customer_id, value, expire_time) {
        (true, Some(customer_id), Some(value), Some(expire_time)) => Ok(NewCoupon {
            customer_id,
            currency_code: value.currency,
            value_minor: value.minor,
            description: c.description.trim().to_owned(),
            valid_from,
            expire_time,
        }),
        _ => Err(Error::InvalidArgument { violations }),
    }
}

#[tonic::async_trait]
impl CouponService for CouponApi {
    #[tracing::instrument(skip_all)]
    async fn issue_coupon(&self, request: Request<pb::IssueCouponRequest>) -> Result<Response<pb::IssueCouponResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::COUPONS_WRITE)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "IssueCoupon",
                &request.request_id,
                &pb::IssueCouponRequest { request_id: String::new(), ..request.clone() },
            )?;
            let coupon = new_coupon(&required(request.coupon, "coupon")?)?;
            self.profiles.customer(&from, coupon.customer_id, "coupon.customer").await?;
            let now = Utc::now();
            self.app
                .issue_coupon(principal.tenant, &coupon, key.as_ref(), now, |row| pb::IssueCouponResponse {
                    coupon: Some(coupon_to(row, now)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_coupon(&self, request: Request<pb::GetCouponRequest>) -> Result<Response<pb::GetCouponResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::COUPONS_READ)?;
            let id = COUPON.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetCouponResponse { coupon: Some(coupon_to(&self.app.coupon(principal.tenant, id).await?, Utc::now())) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_coupons(&self, request: Request<pb::ListCouponsRequest>) -> Result<Response<pb::ListCouponsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::COUPONS_READ)?;
            let request = request.get_ref();
            let customer = CUSTOMER.parse(&request.customer, "customer")?;
            let pager = Pager::new(&self.page_tokens);
            let page =
                pager.start(request.page_size, &request.page_token, &["ListCoupons", &principal.tenant.to_string(), &request.customer])?;
            let rows = self.app.coupons(principal.tenant, customer, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |c| c.id);
            let now = Utc::now();
            Ok(pb::ListCouponsResponse { coupons: rows.iter().map(|c| coupon_to(c, now)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn redeem_coupon(&self, request: Request<pb::RedeemCouponRequest>) -> Result<Response<pb::RedeemCouponResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::COUPONS_WRITE)?;
            let request = request.get_ref();
            let code = normalize(&request.code);
            let reference = request.reference.trim();
            let mut violations = Vec::new();
            if code.is_empty() || code.len() > 64 {
                violations.push(FieldViolation::new("code", "INVALID_CODE", "the coupon's code"));
            }
            if reference.is_empty() || reference.chars().count() > MAX_TEXT {
                violations.push(FieldViolation::new(
                    "reference",
                    "INVALID_REFERENCE",
                    format!("what it is redeemed for, 1-{MAX_TEXT} characters"),
                ));
            }
            let customer = match request.customer.as_str() {
                "" => None,
                name => match CUSTOMER.parse(name, "customer") {
                    Ok(id) => Some(id),
                    Err(Error::InvalidArgument { violations: found }) => {
                        violations.extend(found);
                        None
                    }
                    Err(other) => return Err(other),
                },
            };
            if !violations.is_empty() {
                return Err(Error::InvalidArgument { violations });
            }
            let now = Utc::now();
            let redeemed = self.app.redeem_coupon(principal.tenant, &code, reference, customer, now).await?;
            Ok(pb::RedeemCouponResponse { coupon: Some(coupon_to(&redeemed, now)) })
        })
        .await
    }
}
