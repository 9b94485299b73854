//! Unsubscribe links: RFC 8058 headers on marketing email, followed without a
//! login, withdrawing consent in profiles once, honoured by the next campaign —
//! and kept, and carried to profiles later, when profiles is down.

use std::time::Duration;

use crm_proto::crm::{
    campaigns::v1::{self as pb, unsubscribe_service_client::UnsubscribeServiceClient},
    profiles::v1 as profiles,
};
use crm_testkit::{
    process::{binary, spawn_service_on, terminate},
    smtp::ReceivedMail,
};
use tonic::{Code, Request, Status};

use crate::helpers::{Clients, Person, TestApp, assert_error, email_template, spawn_app_with};

const PUBLIC_URL: &str = "https://crm.example.test";

async fn spawn() -> TestApp {
    spawn_app_with(|c| c.public_url = Some(format!("{PUBLIC_URL}/"))).await
}

/// Sends a marketing campaign to everyone tagged `tag` and waits until it completes.
async fn run_campaign(app: &Clients, tag: &str) -> pb::Campaign {
    let template = app
        .create_template(email_template(
            pb::Purpose::Marketing,
            "News for {{ customer.display_name }}",
            "Hello. Leave: {{ links.unsubscribe }}",
            &[],
        ))
        .await
        .unwrap();
    let campaign = app.create_campaign(&template.name, &format!("tags:\"{tag}\""), &[]).await.unwrap();
    let start = pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() };
    app.campaigns().start_campaign(app.as_roles(start, &["marketer"])).await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Completed).await
}

/// The value of header `name` in a raw message (unfolded).
fn header(mail: &ReceivedMail, name: &str) -> Option<String> {
    let head = mail.data.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The link's resource name from a message's `List-Unsubscribe` header.
fn link_of(mail: &ReceivedMail) -> String {
    let value = header(mail, "List-Unsubscribe").expect("a List-Unsubscribe header");
    let url = value.trim_start_matches('<').trim_end_matches('>');
    let rest = url.strip_prefix(&format!("{PUBLIC_URL}/v1/")).unwrap_or_else(|| panic!("a link into the gateway: {url}"));
    rest.strip_suffix(":unsubscribe").expect("the one-click method").to_owned()
}

fn links_of(app: &Clients) -> UnsubscribeServiceClient<tonic::transport::Channel> {
    UnsubscribeServiceClient::new(app.channel.clone())
}

/// Follows `name` as a mail client does: no token, the RFC 8058 form body.
async fn one_click(app: &Clients, name: &str) -> Result<pb::UnsubscribeLink, Status> {
    let request = pb::UnsubscribeRequest {
        name: name.to_owned(),
        form: Some(crm_proto::google::api::HttpBody {
            content_type: "application/x-www-form-urlencoded".into(),
            data: b"List-Unsubscribe=One-Click".to_vec(),
            extensions: Vec::new(),
        }),
    };
    Ok(links_of(app).unsubscribe(Request::new(request)).await?.into_inner().link.unwrap())
}

async fn consent(app: &Clients, customer: &str) -> profiles::ConsentState {
    let request = app.admin(profiles::GetCustomerRequest { name: customer.to_owned() });
    let c = app.customers.clone().get_customer(request).await.unwrap().into_inner().customer.unwrap();
    profiles::ConsentState::try_from(c.consent.unwrap().email.unwrap().state).unwrap()
}

/// The mail that went to `address`.
fn mail_to(app: &TestApp, address: &str) -> ReceivedMail {
    app.smtp.messages().into_iter().find(|m| m.rcpt_tos.iter().any(|r| r == address)).expect("a message to the address")
}

#[tokio::test]
async fn one_click_withdraws_consent_once_and_the_next_campaign_skips_the_customer() {
    let app = spawn().await;
    app.email_provider().await;
    let leaving = app
        .customer(Person { name: "Leaving", email: "leaving@example.com", email_opt_in: true, tags: &["news"], ..Person::default() })
        .await;
    app.customer(Person { name: "Staying", email: "staying@example.com", email_opt_in: true, tags: &["news"], ..Person::default() }).await;
    let first = run_campaign(&app, "news").await;

    let mail = mail_to(&app, "leaving@example.com");
    assert_eq!(header(&mail, "List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let name = link_of(&mail);
    assert_ne!(name, link_of(&mail_to(&app, "staying@example.com")), "one link per recipient");
    let in_body = format!("Leave: {PUBLIC_URL}/v1/{name}:unsubscribe");
    assert!(
        mail.data.replace("=\r\n", "").contains(&in_body),
        "the body's {{{{ links.unsubscribe }}}} is the header's link: {}",
        mail.data
    );

    // Reading the link (as a mail scanner does) changes nothing and needs no login.
    let read = links_of(&app).get_unsubscribe_link(Request::new(pb::GetUnsubscribeLinkRequest { name: name.clone() })).await.unwrap();
    let read = read.into_inner().link.unwrap();
    assert!(!read.unsubscribed && read.channel == pb::Channel::Email as i32, "{read:?}");
    assert!(read.recipient.contains('*') && !read.recipient.contains("leaving"), "masked: {}", read.recipient);
    assert_eq!(consent(&app, &leaving).await, profiles::ConsentState::OptedIn);

    let followed = one_click(&app, &name).await.unwrap();
    assert!(followed.unsubscribed && followed.unsubscribe_time.is_some());
    assert_eq!(consent(&app, &leaving).await, profiles::ConsentState::OptedOut, "withdrawn in profiles before the answer");
    let again = one_click(&app, &name).await.unwrap();
    assert_eq!(again.unsubscribe_time, followed.unsubscribe_time, "a repeat changes nothing");
    assert_eq!(app.campaign(&first.name).await.counts.unwrap().unsubscribed, 1);

    let second = run_campaign(&app, "news").await;
    let counts = second.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped), (1, 1), "{counts:?}");
    assert_eq!(counts.skipped_by_reason[0].reason, pb::SkipReason::NoConsent as i32);
    let to_leaving = app.smtp.messages().into_iter().filter(|m| m.rcpt_tos.iter().any(|r| r == "leaving@example.com")).count();
    assert_eq!(to_leaving, 1, "nothing after the unsubscribe");
}

#[tokio::test]
async fn forged_and_foreign_links_are_refused_alike() {
    let app = spawn().await;
    app.email_provider().await;
    app.customer(Person { name: "A", email: "a@example.com", email_opt_in: true, tags: &["t"], ..Person::default() }).await;
    run_campaign(&app, "t").await;
    let name = link_of(&mail_to(&app, "a@example.com"));

    let mut forged = name.clone().into_bytes();
    let at = forged.len() - 3;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let token = name.strip_prefix("unsubscribeLinks/").unwrap().to_owned();
    for bad in [forged, token, "unsubscribeLinks/".to_owned(), String::new()] {
        assert_error(one_click(&app, &bad).await, Code::Unauthenticated, "INVALID_UNSUBSCRIBE_LINK");
        let get = links_of(&app).get_unsubscribe_link(Request::new(pb::GetUnsubscribeLinkRequest { name: bad.clone() })).await;
        assert_error(get, Code::Unauthenticated, "INVALID_UNSUBSCRIBE_LINK");
    }

    // A genuine link of another deployment (another signing key) is just as invalid here.
    let other = spawn_app_with(|c| {
        c.public_url = Some(PUBLIC_URL.into());
        c.kit.jwt_secret = Some("another deployment's secret 0123456789".into());
    })
    .await;
    let result = links_of(&other).get_unsubscribe_link(Request::new(pb::GetUnsubscribeLinkRequest { name })).await;
    assert_error(result, Code::Unauthenticated, "INVALID_UNSUBSCRIBE_LINK");
}

#[tokio::test]
async fn notices_and_deployments_without_a_public_url_carry_no_link() {
    let app = spawn_app_with(|_| {}).await;
    app.email_provider().await;
    app.customer(Person { name: "A", email: "a@example.com", email_opt_in: true, tags: &["t"], ..Person::default() }).await;
    run_campaign(&app, "t").await;
    assert_eq!(header(&mail_to(&app, "a@example.com"), "List-Unsubscribe"), None);

    let linked = spawn().await;
    linked.email_provider().await;
    let customer = linked.customer(Person { name: "B", email: "b@example.com", email_opt_in: true, ..Person::default() }).await;
    let template = linked.create_template(email_template(pb::Purpose::Transactional, "Your bill", "Due soon.", &[])).await.unwrap();
    let sent = linked.send_notice(&template.name, &customer, &[], "bill-1").await.unwrap();
    linked.settled(&sent.name).await;
    assert_eq!(header(&mail_to(&linked, "b@example.com"), "List-Unsubscribe"), None, "transactional mail has no list to leave");
}

#[tokio::test]
async fn an_unsubscribe_while_profiles_is_down_is_kept_and_applied_later() {
    let mut app = spawn().await;
    app.email_provider().await;
    let leaving = app.customer(Person { name: "L", email: "l@example.com", email_opt_in: true, tags: &["n"], ..Person::default() }).await;
    run_campaign(&app, "n").await;
    let name = link_of(&mail_to(&app, "l@example.com"));

    let profiles = app.profiles.take().unwrap();
    let port: u16 = profiles.url.rsplit(':').next().unwrap().parse().unwrap();
    terminate(profiles.child).await;
    let followed = one_click(&app, &name).await.expect("answered without profiles");
    assert!(followed.unsubscribed);

    let restarted = spawn_service_on(binary("crm-profiles"), &app.profiles_db, port, &[]).await;
    app.profiles = Some(restarted);
    let mut state = profiles::ConsentState::OptedIn;
    for _ in 0..100 {
        state = consent(&app, &leaving).await;
        if state == profiles::ConsentState::OptedOut {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, profiles::ConsentState::OptedOut, "the unsubscribe job carried it to profiles");
}
