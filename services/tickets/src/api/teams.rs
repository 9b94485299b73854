//! `crm.tickets.v1.TeamService`: teams and memberships (admins only to change).

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    db::begin_tenant,
    etag,
    fieldmask::UpdateMask,
    idempotency::{self, IdempotencyKey},
    pagination::{PageTokenCodec, Pager},
    protoenum, required, respond, time,
};
use crm_proto::crm::tickets::v1::{self as pb, team_service_server::TeamService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::{App, Member},
    permissions,
    resources::TEAM,
    store::{self, MemberRow, TeamRow},
};

/// Capacity when a membership gives 0.
const DEFAULT_CAPACITY: i32 = 10;

/// Handlers of TeamService.
#[derive(Clone)]
pub struct TeamApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl TeamApi {
    /// Handlers over the use cases of `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

/// Paths UpdateTeam may change.
const TEAM_PATHS: &[&str] = &["display_name", "assignment_strategy", "lead"];

mod team_mask {
    use super::pb;
    crm_kit::mask_fields!(pb::Team;
        "display_name" => display_name,
        "assignment_strategy" => assignment_strategy,
        "lead" => lead,
    );
}

/// A team's validated (display name, strategy, lead).
fn team_fields(team: &pb::Team) -> Result<(String, String, String), Error> {
    let display_name = identifier("team.display_name", &team.display_name, 100)?;
    let lead = if team.lead.trim().is_empty() { String::new() } else { identifier("team.lead", &team.lead, 200)? };
    let strategy = match protoenum::short_name(
        team.assignment_strategy,
        |n| pb::AssignmentStrategy::try_from(n).ok().map(|e| e.as_str_name()),
        "ASSIGNMENT_STRATEGY_",
    ) {
        Ok(s) if s.is_empty() => "ROUND_ROBIN".to_owned(),
        Ok(s) => s,
        Err((reason, message)) => return Err(Error::invalid("team.assignment_strategy", reason, message)),
    };
    Ok((display_name, strategy, lead))
}

fn team_to_proto(row: &TeamRow) -> pb::Team {
    pb::Team {
        name: TEAM.name(row.id),
        display_name: row.display_name.clone(),
        assignment_strategy: protoenum::number(&row.strategy, "ASSIGNMENT_STRATEGY_", |s| {
            pb::AssignmentStrategy::from_str_name(s).map(|e| e as i32)
        }),
        lead: row.lead.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
        etag: etag::of_revision(row.revision),
    }
}

fn member_to_proto(row: &MemberRow) -> pb::TeamMember {
    pb::TeamMember {
        name: format!("{}/members/{}", TEAM.name(row.team_id), row.agent),
        agent: row.agent.clone(),
        capacity: row.capacity,
        skills: row.skills.clone(),
        available: row.available,
        open_tickets: row.load,
    }
}

/// 1-`max` printable characters without `/` (it would break resource names).
fn identifier(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::invalid(field, "INVALID_VALUE", format!("1-{max} printable characters, no '/'")));
    }
    Ok(value.to_owned())
}

#[tonic::async_trait]
impl TeamService for TeamApi {
    #[tracing::instrument(skip_all)]
    async fn create_team(&self, request: Request<pb::CreateTeamRequest>) -> Result<Response<pb::CreateTeamResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateTeam",
                &request.request_id,
                &pb::CreateTeamRequest { request_id: String::new(), ..request.clone() },
            )?;
            let (display_name, strategy, lead) = team_fields(&required(request.team, "team")?)?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(self.app.pool(), tenant).await?;
            if let Some(replay) = idempotency::replay(key.as_ref(), &mut tx, tenant).await? {
                tx.commit().await?;
                return Ok(replay);
            }
            let row = store::insert_team(&mut tx, tenant, Uuid::now_v7(), &display_name, &strategy, &lead, Utc::now()).await?;
            let response = pb::CreateTeamResponse { team: Some(team_to_proto(&row)) };
            idempotency::remember(key.as_ref(), &mut tx, tenant, &response).await?;
            tx.commit().await?;
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_team(&self, request: Request<pb::GetTeamRequest>) -> Result<Response<pb::GetTeamResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let id = TEAM.parse_as(&request.get_ref().name, "name", "INVALID_TEAM")?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let row = store::find_team(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| TEAM.not_found(id))?;
            tx.commit().await?;
            Ok(pb::GetTeamResponse { team: Some(team_to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_team(&self, request: Request<pb::UpdateTeamRequest>) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let pb::UpdateTeamRequest { team, update_mask } = request.into_inner();
            let input = required(team, "team")?;
            let id = TEAM.parse_as(&input.name, "team.name", "INVALID_TEAM")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), TEAM_PATHS)?.resolve(TEAM_PATHS);
            etag::parse(&input.etag, "team.etag")?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(self.app.pool(), tenant).await?;
            let current = store::find_team(&mut tx, tenant, id, true).await?.ok_or_else(|| TEAM.not_found(id))?;
            TEAM.check_etag(&input.etag, "team.etag", id, current.revision)?;
            let mut merged = team_to_proto(&current);
            for path in &paths {
                team_mask::copy_field(&mut merged, &input, path);
            }
            let (display_name, strategy, lead) = team_fields(&merged)?;
            let unchanged = (display_name.as_str(), strategy.as_str(), lead.as_str())
                == (current.display_name.as_str(), current.strategy.as_str(), current.lead.as_str());
            let stored = if unchanged { current } else { store::update_team(&mut tx, tenant, id, &display_name, &strategy, &lead).await? };
            tx.commit().await?;
            Ok(pb::UpdateTeamResponse { team: Some(team_to_proto(&stored)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_teams(&self, request: Request<pb::ListTeamsRequest>) -> Result<Response<pb::ListTeamsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListTeams", &principal.tenant.to_string()])?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let rows = store::list_teams(&mut tx, principal.tenant, page.after.clone(), page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |t| (t.display_name.clone(), t.id));
            Ok(pb::ListTeamsResponse { teams: rows.iter().map(team_to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn set_team_member(&self, request: Request<pb::SetTeamMemberRequest>) -> Result<Response<pb::SetTeamMemberResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.into_inner();
            let team_id = TEAM.parse_as(&request.parent, "parent", "INVALID_TEAM")?;
            let member = required(request.member, "member")?;
            let agent = identifier("member.agent", &member.agent, 200)?;
            let capacity = match member.capacity {
                0 => DEFAULT_CAPACITY,
                c @ 1..=1000 => c,
                _ => return Err(Error::invalid("member.capacity", "INVALID_CAPACITY", "capacity must be 1-1000 (0 means 10)")),
            };
            if member.skills.len() > 50 {
                return Err(Error::invalid("member.skills", "TOO_MANY_ENTRIES", "at most 50 skills"));
            }
            let skills = member
                .skills
                .iter()
                .enumerate()
                .map(|(i, s)| identifier(&format!("member.skills[{i}]"), s, 100))
                .collect::<Result<Vec<_>, _>>()?;
            let member = Member { agent: &agent, capacity, skills: &skills, available: member.available };
            let stored = self.app.set_team_member(principal.tenant, team_id, member, Utc::now()).await?;
            Ok(pb::SetTeamMemberResponse { member: Some(member_to_proto(&stored)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let name = &request.get_ref().name;
            let invalid =
                || Error::invalid("name", "INVALID_NAME", format!("{name:?} is not a member name like \"teams/<uuid>/members/<agent>\""));
            let (team, agent) = name.split_once("/members/").ok_or_else(invalid)?;
            let team_id = TEAM.parse_as(team, "name", "INVALID_TEAM")?;
            if !self.app.remove_team_member(principal.tenant, team_id, agent, Utc::now()).await? {
                return Err(Error::NotFound { resource_type: "tickets.crm/TeamMember", name: name.clone() });
            }
            Ok(pb::RemoveTeamMemberResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_team_members(
        &self,
        request: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let team_id = TEAM.parse_as(&request.parent, "parent", "INVALID_TEAM")?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(
                request.page_size,
                &request.page_token,
                &["ListTeamMembers", &principal.tenant.to_string(), &request.parent],
            )?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            store::find_team(&mut tx, principal.tenant, team_id, false).await?.ok_or_else(|| TEAM.not_found(team_id))?;
            let rows = store::members_page(&mut tx, principal.tenant, team_id, page.after.clone(), page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |m| m.agent.clone());
            Ok(pb::ListTeamMembersResponse { members: rows.iter().map(member_to_proto).collect(), next_page_token })
        })
        .await
    }
}
