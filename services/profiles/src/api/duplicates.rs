//! `crm.profiles.v1.DuplicateService` (`customers.read`): candidates for a
//! customer or a draft, and the pairs the scan found. Candidates are
//! customers, so emails and phones are masked without `pii`.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    pagination::{PageTokenCodec, Pager},
    respond,
};
use crm_proto::crm::profiles::v1::{self as pb, duplicate_service_server::DuplicateService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{authorization::authorize, customers::shown};
use crate::{
    app::{
        App,
        duplicates::{MIN_KEPT_SCORE, Subject},
    },
    domain::matching::{DEFAULT_MIN_SCORE, Person, Signal},
    permissions,
    resources::CUSTOMER,
    wire::draft_from_proto,
};

/// Candidates one FindDuplicates returns at most.
const MAX_CANDIDATES: i32 = 100;

/// Handlers of DuplicateService.
#[derive(Clone)]
pub struct DuplicateApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl DuplicateApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

/// The least score asked for: 0 means the default; `floor` is the least there is to find.
fn min_score(asked: f64, floor: f64) -> Result<f64, Error> {
    match asked {
        0.0 => Ok(DEFAULT_MIN_SCORE),
        s if (floor..=1.0).contains(&s) => Ok(s),
        _ => Err(Error::invalid("min_score", "OUT_OF_RANGE", format!("0 (the default, {DEFAULT_MIN_SCORE}) or {floor} to 1"))),
    }
}

fn signals(signals: impl Iterator<Item = impl AsRef<str>>) -> Vec<i32> {
    signals.filter_map(|s| pb::MatchSignal::from_str_name(&format!("MATCH_SIGNAL_{}", s.as_ref())).map(|m| m as i32)).collect()
}

#[tonic::async_trait]
impl DuplicateService for DuplicateApi {
    #[tracing::instrument(skip_all)]
    async fn find_duplicates(&self, request: Request<pb::FindDuplicatesRequest>) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let r = request.get_ref();
            let subject = match (r.name.is_empty(), &r.customer) {
                (false, None) => {
                    let id = CUSTOMER.parse(&r.name, "name")?;
                    authorize(&principal, id, permissions::CUSTOMERS_READ)?;
                    Subject::Customer(id)
                }
                (true, Some(customer)) => {
                    let draft =
                        draft_from_proto(customer, "customer", Utc::now()).map_err(|violations| Error::InvalidArgument { violations })?;
                    Subject::Draft(Person::of_draft(&draft))
                }
                _ => {
                    return Err(Error::invalid("name", "ONE_SUBJECT", "exactly one of name (an existing customer) and customer (a draft)"));
                }
            };
            let min_score = min_score(r.min_score, 0.05)?;
            let max = match r.max_candidates {
                0 => 10,
                n @ 1..=MAX_CANDIDATES => n,
                _ => return Err(Error::invalid("max_candidates", "OUT_OF_RANGE", format!("0 (10) or 1 to {MAX_CANDIDATES}"))),
            };
            let found = self.app.find_duplicates(principal.tenant, subject, min_score, usize::try_from(max).unwrap_or(10)).await?;
            let candidates = found
                .iter()
                .map(|(row, likeness)| pb::DuplicateCandidate {
                    customer: shown(&principal, row),
                    score: likeness.score,
                    signals: signals(likeness.signals.iter().map(|s: &Signal| s.as_str())),
                })
                .collect();
            Ok(pb::FindDuplicatesResponse { candidates })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_duplicates(&self, request: Request<pb::ListDuplicatesRequest>) -> Result<Response<pb::ListDuplicatesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let r = request.get_ref();
            let min_score = min_score(r.min_score, MIN_KEPT_SCORE)?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<(f64, Uuid, Uuid)>(r.page_size, &r.page_token, &["ListDuplicates", &min_score.to_string()])?;
            let rows = self.app.duplicate_pairs(principal.tenant, min_score, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |p| (p.score, p.customer_id, p.duplicate_id));
            let duplicates = rows
                .iter()
                .map(|p| pb::DuplicatePair {
                    customer: CUSTOMER.name(p.customer_id),
                    duplicate: CUSTOMER.name(p.duplicate_id),
                    score: p.score,
                    signals: signals(p.signals.iter()),
                    find_time: Some(crm_kit::time::to_timestamp(p.find_time)),
                })
                .collect();
            Ok(pb::ListDuplicatesResponse { duplicates, next_page_token })
        })
        .await
    }
}
