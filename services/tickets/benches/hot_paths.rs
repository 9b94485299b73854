//! `make bench`: tickets' hot calls — CreateTicket (with its customer check
//! against profiles), GetTicket, ListTickets (page 50), TransitionTicket —
//! against release crm-tickets and crm-profiles processes on fresh databases,
//! with the suite's bench harness (8 and 1 in flight, every response checked,
//! p50/p99, service CPU per call, peak RSS). The reference, measured right
//! after GetTicket's own run, is pgbench running GetTicket's statement
//! prepared as tickets' login role (RLS on), the tenant set for the session:
//! the service reads a ticket in one round trip (the kit's `Table::get`:
//! `SET LOCAL` of the tenant and `EXECUTE` of the prepared SELECT as one
//! simple query), which pgbench cannot send, so this is its nearest equal.
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crm_proto::crm::{
    profiles::v1::{self as profiles, customer_service_client::CustomerServiceClient},
    tickets::v1::{self as pb, ticket_service_client::TicketServiceClient},
};
use crm_testkit::{
    auth::{token, with_token},
    bench::{HEADER, ScriptFile, build_kind, measure, peak_rss_mb, pgbench, row, unary, with_session_tenant},
    database::fresh_database,
    process::{binary, spawn_service},
};

/// Tickets created before measuring; a multiple of 8, so that with 8 callers
/// each ticket is only ever moved by one of them.
const TICKETS: usize = 512;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let duration = if full { Duration::from_secs(8) } else { Duration::from_millis(400) };
    let tenant = uuid::Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);

    let profiles_process = spawn_service(binary("crm-profiles"), &fresh_database("profiles").await?, &[]).await;
    let tickets_db = fresh_database("tickets").await?;
    let service = spawn_service(binary("crm-tickets"), &tickets_db, &[("CRM_PROFILES_URL", profiles_process.url.clone())]).await;
    let pid = service.child.id().expect("running");
    let customer = CustomerServiceClient::new(profiles_process.channel.clone())
        .create_customer(with_token(
            profiles::CreateCustomerRequest {
                customer: Some(profiles::Customer { display_name: "Bench".into(), ..Default::default() }),
                request_id: String::new(),
            },
            &bearer,
        ))
        .await?
        .into_inner()
        .customer
        .expect("a customer")
        .name;
    let client = TicketServiceClient::new(service.channel.clone());
    let open = {
        let (client, customer, bearer) = (client.clone(), customer.clone(), bearer.clone());
        move |i: usize| {
            let ticket = pb::Ticket { customer: customer.clone(), subject: format!("Ticket {i}"), ..Default::default() };
            let request = with_token(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }, &bearer);
            let mut client = client.clone();
            async move { client.create_ticket(request).await.expect("CreateTicket").into_inner().ticket.expect("a ticket") }
        }
    };
    let mut names = Vec::with_capacity(TICKETS);
    for i in 0..TICKETS {
        let ticket = open(i).await;
        let request = with_token(
            pb::TransitionTicketRequest { name: ticket.name.clone(), status: pb::Status::Open as i32, ..Default::default() },
            &bearer,
        );
        client.clone().transition_ticket(request).await?;
        names.push(ticket.name);
    }
    let names = Arc::new(names);

    let (names_get, bearer_get) = (names.clone(), bearer.clone());
    let get = unary(
        client.clone(),
        move |i| with_token(pb::GetTicketRequest { name: names_get[i % names_get.len()].clone() }, &bearer_get),
        |mut client, request| async move {
            client.get_ticket(request).await.expect("GetTicket");
        },
    );
    let bearer_list = bearer.clone();
    let list = unary(
        client.clone(),
        move |_| with_token(pb::ListTicketsRequest { page_size: 50, ..Default::default() }, &bearer_list),
        |mut client, request| async move {
            assert_eq!(client.list_tickets(request).await.expect("ListTickets").into_inner().tickets.len(), 50);
        },
    );
    // OPEN ⇄ PENDING; a ticket's state is kept here so that every move is a valid one.
    let pending: Arc<Vec<AtomicBool>> = Arc::new((0..TICKETS).map(|_| AtomicBool::new(false)).collect());
    let (names_move, bearer_move) = (names.clone(), bearer.clone());
    let transition = unary(
        client.clone(),
        move |i| {
            let t = i % TICKETS;
            let to = if pending[t].fetch_xor(true, Ordering::SeqCst) { pb::Status::Open } else { pb::Status::Pending };
            with_token(pb::TransitionTicketRequest { name: names_move[t].clone(), status: to as i32, ..Default::default() }, &bearer_move)
        },
        |mut client, request| async move {
            client.transition_ticket(request).await.expect("TransitionTicket");
        },
    );
    let create = move |i: usize| {
        let ticket = open(TICKETS + i);
        async move {
            ticket.await;
        }
    };
    let seconds = if full { 8 } else { 1 };
    let first = names[0].trim_start_matches("tickets/");
    let script = ScriptFile::write(&format!("SELECT * FROM tickets WHERE tenant_id = '{tenant}' AND id = '{first}';\n"));
    let get_figures = measure(pid, get, duration).await;
    let same_statement =
        pgbench(&with_session_tenant(&tickets_db.app_url, tenant), &["-M", "prepared", "-f", &script.0.to_string_lossy()], seconds);
    let figures = [
        ("GetTicket", get_figures),
        ("ListTickets, page 50", measure(pid, list, duration).await),
        ("TransitionTicket", measure(pid, transition, duration).await),
        ("CreateTicket (checks profiles)", measure(pid, create, duration).await),
    ];
    let rss = peak_rss_mb(pid);

    println!("tickets hot paths, 8 in flight for {duration:?} each ({TICKETS} tickets, {}, telemetry off)", build_kind());
    println!("{HEADER}");
    for (label, f) in &figures {
        println!("{}", row(label, f));
    }
    println!(
        "reference: pgbench, GetTicket's SELECT prepared as the login role (tenant set per session): {same_statement:.0} tps → GetTicket {:.2}x",
        figures[0].1.per_second / same_statement
    );
    println!("service peak RSS: {}", rss.map_or(String::from("-"), |mb| format!("{mb:.1} MB")));
    Ok(())
}
