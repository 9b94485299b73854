//! The outbox events of ticket changes: the ticket in its wire form, written
//! in the transaction of the change; the event type is the message's name.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::tickets::v1 as pb;
use prost::{Message, Name};
use uuid::Uuid;

use crate::{domain::ticket::Ticket, resources::TICKET, wire::ticket_to_proto};

/// The ticket as events carry it, with SLA states as of `now`.
pub(super) fn wire(ticket: &Ticket, now: DateTime<Utc>) -> pb::Ticket {
    ticket_to_proto(ticket, now)
}

/// Writes `event` about ticket `id`.
pub(super) async fn emit<M: Message + Name>(tx: &mut TenantTx, tenant: Uuid, id: Uuid, event: &M) -> Result<(), Error> {
    outbox::append(tx, tenant, &TICKET.name(id), event).await
}

/// `TicketAssigned` for `ticket`, previously with `previous_assignee`.
pub(super) async fn assigned(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: &Ticket,
    previous_assignee: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let event = pb::TicketAssigned { ticket: Some(wire(ticket, now)), previous_assignee: previous_assignee.to_owned() };
    emit(tx, tenant, ticket.id, &event).await
}
