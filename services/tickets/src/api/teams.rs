//! `crm.tickets.v1.TeamService`: teams and memberships (admins only to change).

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Permission, caller},
    db::begin_tenant,
    protoenum, time,
};
use crm_proto::crm::tickets::v1::{self as pb, team_service_server::TeamService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::{App, Member},
    resources::TEAM,
    store::{self, MemberRow, TeamRow},
};

/// Capacity when a membership gives 0.
const DEFAULT_CAPACITY: i32 = 10;

/// Handlers of TeamService.
#[derive(Clone)]
pub struct TeamApi {
    app: App,
}

impl TeamApi {
    /// Handlers over the use cases of `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
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
    async fn create_team(&self, request: Request<pb::CreateTeamRequest>) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let team = request.into_inner().team.ok_or_else(|| Error::invalid("team", "REQUIRED", "team is required"))?;
        let display_name = identifier("team.display_name", &team.display_name, 100)?;
        let lead = if team.lead.trim().is_empty() { String::new() } else { identifier("team.lead", &team.lead, 200)? };
        let strategy = match protoenum::short_name(
            team.assignment_strategy,
            |n| pb::AssignmentStrategy::try_from(n).ok().map(|e| e.as_str_name()),
            "ASSIGNMENT_STRATEGY_",
        ) {
            Ok(s) if s.is_empty() => "ROUND_ROBIN".to_owned(),
            Ok(s) => s,
            Err((reason, message)) => return Err(Error::invalid("team.assignment_strategy", reason, message).into()),
        };
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let row = store::insert_team(&mut tx, principal.tenant, Uuid::now_v7(), &display_name, &strategy, &lead, Utc::now()).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateTeamResponse { team: Some(team_to_proto(&row)) }))
    }

    async fn get_team(&self, request: Request<pb::GetTeamRequest>) -> Result<Response<pb::GetTeamResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let id = TEAM.parse_as(&request.get_ref().name, "name", "INVALID_TEAM")?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let row = store::find_team(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| TEAM.not_found(id))?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::GetTeamResponse { team: Some(team_to_proto(&row)) }))
    }

    async fn list_teams(&self, request: Request<pb::ListTeamsRequest>) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let rows = store::list_teams(&mut tx, principal.tenant).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListTeamsResponse { teams: rows.iter().map(team_to_proto).collect() }))
    }

    async fn set_team_member(&self, request: Request<pb::SetTeamMemberRequest>) -> Result<Response<pb::SetTeamMemberResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let request = request.into_inner();
        let team_id = TEAM.parse_as(&request.parent, "parent", "INVALID_TEAM")?;
        let member = request.member.ok_or_else(|| Error::invalid("member", "REQUIRED", "member is required"))?;
        let agent = identifier("member.agent", &member.agent, 200)?;
        let capacity = match member.capacity {
            0 => DEFAULT_CAPACITY,
            c @ 1..=1000 => c,
            _ => return Err(Error::invalid("member.capacity", "INVALID_CAPACITY", "capacity must be 1-1000 (0 means 10)").into()),
        };
        if member.skills.len() > 50 {
            return Err(Error::invalid("member.skills", "TOO_MANY_ENTRIES", "at most 50 skills").into());
        }
        let skills = member
            .skills
            .iter()
            .enumerate()
            .map(|(i, s)| identifier(&format!("member.skills[{i}]"), s, 100))
            .collect::<Result<Vec<_>, _>>()?;

        let member = Member { agent: &agent, capacity, skills: &skills, available: member.available };
        let stored = self.app.set_team_member(principal.tenant, team_id, member, Utc::now()).await?;
        Ok(Response::new(pb::SetTeamMemberResponse { member: Some(member_to_proto(&stored)) }))
    }

    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let name = &request.get_ref().name;
        let invalid =
            || Error::invalid("name", "INVALID_NAME", format!("{name:?} is not a member name like \"teams/<uuid>/members/<agent>\""));
        let (team, agent) = name.split_once("/members/").ok_or_else(invalid)?;
        let team_id = TEAM.parse_as(team, "name", "INVALID_TEAM")?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        if !store::delete_member(&mut tx, principal.tenant, team_id, agent).await? {
            return Err(Error::NotFound { resource_type: "tickets.crm/TeamMember", name: name.clone() }.into());
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::RemoveTeamMemberResponse {}))
    }

    async fn list_team_members(
        &self,
        request: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let team_id = TEAM.parse_as(&request.get_ref().parent, "parent", "INVALID_TEAM")?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        store::find_team(&mut tx, principal.tenant, team_id, false).await?.ok_or_else(|| TEAM.not_found(team_id))?;
        let rows = store::members(&mut tx, principal.tenant, team_id).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListTeamMembersResponse { members: rows.iter().map(member_to_proto).collect() }))
    }
}
