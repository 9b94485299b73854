//! The cross-domain rule: no marketing to a customer with an open complaint
//! ticket — known from tickets' event stream (a real tickets process), and
//! lifted when the complaint is resolved.

use std::time::Duration;

use crm_proto::crm::{campaigns::v1 as pb, tickets::v1 as tickets};

use crate::helpers::{Person, TestApp, email_template, spawn_app_with_tickets};

/// The reasons RenderPreview gives for `customer`, until `wanted` says yes (at most 20 s).
async fn preview_until(app: &TestApp, template: &str, customer: &str, wanted: impl Fn(&[String]) -> bool) -> Vec<String> {
    for _ in 0..200 {
        let request = app.admin(pb::RenderPreviewRequest {
            template: template.into(),
            customer: customer.into(),
            variables: [("discount".to_owned(), "5%".to_owned())].into(),
            locale: String::new(),
        });
        let reasons: Vec<String> =
            app.templates.clone().render_preview(request).await.unwrap().into_inner().problems.into_iter().map(|p| p.reason).collect();
        if wanted(&reasons) {
            return reasons;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the preview never showed what was awaited");
}

#[tokio::test]
async fn no_marketing_reaches_a_customer_with_an_open_complaint() {
    let app = spawn_app_with_tickets().await;
    let tickets_channel = app.tickets.as_ref().unwrap().channel.clone();
    app.email_provider().await;
    let promo =
        app.create_template(email_template(pb::Purpose::Marketing, "Offer", "{{ vars.discount }} off", &["discount"])).await.unwrap();
    let angry =
        app.customer(Person { name: "Angry", email: "angry@example.com", email_opt_in: true, tags: &["promo"], ..Person::default() }).await;
    app.customer(Person { name: "Happy", email: "happy@example.com", email_opt_in: true, tags: &["promo"], ..Person::default() }).await;

    // Angry files a complaint in tickets.
    let ticket = tickets::Ticket {
        customer: angry.clone(),
        subject: "You double-charged me".into(),
        r#type: tickets::TicketType::Complaint as i32,
        ..Default::default()
    };
    let mut ticket_client = tickets::ticket_service_client::TicketServiceClient::new(tickets_channel);
    let ticket = ticket_client
        .create_ticket(app.admin(tickets::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    preview_until(&app, &promo.name, &angry, |r| r.iter().any(|r| r == "OPEN_COMPLAINT")).await;

    // A campaign to both: Angry is skipped, Happy is not.
    let campaign = app.create_campaign(&promo.name, "tags:\"promo\"", &[("discount", "5%")]).await.unwrap();
    let request = app.as_roles(pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() }, &["marketer"]);
    app.campaigns().start_campaign(request).await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let counts = done.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped), (1, 1), "{counts:?}");
    assert_eq!(counts.skipped_by_reason, vec![pb::SkipCount { reason: pb::SkipReason::OpenComplaint as i32, count: 1 }]);
    let to: Vec<String> = app.smtp.messages().into_iter().flat_map(|m| m.rcpt_tos).collect();
    assert_eq!(to, vec!["happy@example.com"]);

    // Transactional messages still reach Angry.
    let fee = app.create_template(email_template(pb::Purpose::Transactional, "Fee", "Pay {{ vars.a }}", &["a"])).await.unwrap();
    let notice = app.send_notice(&fee.name, &angry, &[("a", "1")], "fee").await.unwrap();
    assert_eq!(app.settled(&notice.name).await.status, pb::DeliveryStatus::Sent as i32);

    // Resolved: marketing may reach Angry again.
    let resolve = tickets::TransitionTicketRequest {
        name: ticket.name.clone(),
        status: tickets::Status::Resolved as i32,
        etag: String::new(),
        reason: "refunded".into(),
    };
    ticket_client.transition_ticket(app.admin(resolve)).await.unwrap();
    preview_until(&app, &promo.name, &angry, |r| !r.iter().any(|r| r == "OPEN_COMPLAINT")).await;
    let offer = app.send_notice(&promo.name, &angry, &[("discount", "5%")], "after").await.unwrap();
    assert_eq!(app.settled(&offer.name).await.status, pb::DeliveryStatus::Sent as i32);
}
