//! Open and click tracking of marketing email: the pixel and the links are
//! rewritten on the way out (the ledger keeps the message as rendered), each
//! first open and first click is stored and counted once, a click is an
//! open too, the unsubscribe link is left alone, and forged or out-of-range
//! links are refused. Hard bounces are counted apart among the failures.

use crm_proto::crm::campaigns::v1::{self as pb, tracking_service_client::TrackingServiceClient};
use crm_testkit::smtp::ReceivedMail;
use tonic::{Code, Request};

use crate::helpers::{Clients, Person, TestApp, assert_error, email_template, spawn_app_with};

const PUBLIC_URL: &str = "https://crm.example.test";

fn newsletter() -> pb::Template {
    let mut template = email_template(pb::Purpose::Marketing, "Autumn news", "Read it at https://shop.example/news", &[]);
    template.contents[0].html_body = concat!(
        "<html><body><h1>Autumn news, {{ customer.display_name }}</h1>",
        "<p><a href=\"https://shop.example/sale?from=mail&amp;season=autumn\">The sale</a> and ",
        "<a href=\"https://shop.example/events\">our events</a>.</p>",
        "<p><a href=\"{{ links.unsubscribe }}\">Unsubscribe</a></p></body></html>"
    )
    .into();
    template
}

/// The HTML part of a sent message.
fn html_of(mail: &ReceivedMail) -> String {
    mail.html_part().expect("an HTML part")
}

/// The `trackingLinks/…` resource names (and link positions) in `html`, in order.
fn tracking_urls(html: &str) -> Vec<String> {
    html.split(&format!("{PUBLIC_URL}/v1/")).skip(1).map(|rest| rest[..rest.find(['"', '\''].as_ref()).unwrap()].to_owned()).collect()
}

async fn run(app: &Clients) -> (pb::Campaign, String) {
    app.email_provider().await;
    app.customer(Person { name: "Ann", email: "ann@example.com", email_opt_in: true, tags: &["news"], ..Person::default() }).await;
    let template = app.create_template(newsletter()).await.unwrap();
    let campaign = app.create_campaign(&template.name, "tags:\"news\"", &[]).await.unwrap();
    let start = pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() };
    app.campaigns().start_campaign(app.as_roles(start, &["marketer"])).await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let delivery = app.list_deliveries(&format!("campaign = \"{}\"", campaign.name), &["admin"]).await.unwrap().remove(0).name;
    (done, delivery)
}

fn tracking(app: &TestApp) -> TrackingServiceClient<tonic::transport::Channel> {
    TrackingServiceClient::new(app.channel.clone())
}

async fn click(app: &TestApp, url: &str) -> Result<tonic::Response<pb::FollowTrackedLinkResponse>, tonic::Status> {
    let (name, link) = url.split_once(":click?link=").expect("a click URL");
    tracking(app).follow_tracked_link(Request::new(pb::FollowTrackedLinkRequest { name: name.into(), link: link.parse().unwrap() })).await
}

async fn counts(app: &Clients, campaign: &str) -> pb::CampaignCounts {
    app.campaign(campaign).await.counts.unwrap()
}

#[tokio::test]
async fn opens_and_clicks_of_a_campaign_email_are_recorded_once_each() {
    let app = spawn_app_with(|c| c.public_url = Some(PUBLIC_URL.into())).await;
    let (campaign, delivery) = run(&app).await;
    let html = html_of(&app.smtp.messages()[0]);
    let urls = tracking_urls(&html);
    assert_eq!(urls.len(), 3, "two links and the pixel: {html}");
    assert!(urls[0].ends_with(":click?link=0") && urls[1].ends_with(":click?link=1"), "{urls:?}");
    // The template escaped it (`/` as `&#x2f;`); it is still the unsubscribe link, untracked.
    assert!(html.contains(r#"<a href="https:&#x2f;&#x2f;crm.example.test&#x2f;v1&#x2f;unsubscribeLinks&#x2f;"#), "{html}");
    assert!(urls[2].ends_with(":open") && html.contains(r#"width="1" height="1""#), "{urls:?}");
    let stored = app.delivery(&delivery).await;
    assert!(!stored.html_body.contains("trackingLinks"), "the sent log keeps the message as rendered");

    let pixel = urls[2].trim_end_matches(":open").to_owned();
    let opened = tracking(&app).open_tracking_pixel(Request::new(pb::OpenTrackingPixelRequest { name: pixel.clone() })).await.unwrap();
    let gif = opened.into_inner().pixel.unwrap();
    assert_eq!((gif.content_type.as_str(), &gif.data[..6]), ("image/gif", &b"GIF89a"[..]));
    tracking(&app).open_tracking_pixel(Request::new(pb::OpenTrackingPixelRequest { name: pixel })).await.unwrap();
    let after_open = counts(&app, &campaign.name).await;
    assert_eq!((after_open.opened, after_open.clicked), (1, 0), "a second open is not a second opener");

    let followed = click(&app, &urls[0]).await.unwrap();
    assert_eq!(followed.metadata().get("location").unwrap(), "https://shop.example/sale?from=mail&season=autumn");
    assert_eq!(followed.get_ref().url, "https://shop.example/sale?from=mail&season=autumn");
    assert_eq!(click(&app, &urls[1]).await.unwrap().get_ref().url, "https://shop.example/events");
    let after_clicks = counts(&app, &campaign.name).await;
    assert_eq!((after_clicks.opened, after_clicks.clicked, after_clicks.sent), (1, 1, 1), "{after_clicks:?}");
    let engaged = app.delivery(&delivery).await;
    assert!(engaged.open_time.is_some() && engaged.click_time.is_some(), "{engaged:?}");

    let beyond = urls[0].replace(":click?link=0", ":click?link=7");
    assert_error(click(&app, &beyond).await, Code::InvalidArgument, "NO_SUCH_LINK");
    let forged = urls[0].replacen("trackingLinks/", "trackingLinks/x", 1);
    assert_error(click(&app, &forged).await, Code::Unauthenticated, "INVALID_TRACKING_LINK");
}

#[tokio::test]
async fn a_click_without_an_open_counts_as_both() {
    let app = spawn_app_with(|c| c.public_url = Some(PUBLIC_URL.into())).await;
    let (campaign, _) = run(&app).await;
    let urls = tracking_urls(&html_of(&app.smtp.messages()[0]));
    click(&app, &urls[1]).await.unwrap();
    let c = counts(&app, &campaign.name).await;
    assert_eq!((c.opened, c.clicked), (1, 1), "images were blocked, the link proves the email was read");
}

#[tokio::test]
async fn without_a_public_url_nothing_is_tracked() {
    let app = spawn_app_with(|_| {}).await;
    run(&app).await;
    let html = html_of(&app.smtp.messages()[0]);
    assert!(html.contains(r#"href="https://shop.example/events""#) && !html.contains("<img"), "{html}");
}

#[tokio::test]
async fn a_hard_bounce_is_counted_among_the_failures() {
    let app = spawn_app_with(|_| {}).await;
    app.email_provider().await;
    // The test SMTP server refuses this mailbox with 550 5.1.1.
    app.customer(Person { name: "Gone", email: "reject-unknown@example.com", email_opt_in: true, tags: &["gone"], ..Person::default() })
        .await;
    let template = app.create_template(newsletter()).await.unwrap();
    let campaign = app.create_campaign(&template.name, "tags:\"gone\"", &[]).await.unwrap();
    let start = pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() };
    app.campaigns().start_campaign(app.as_roles(start, &["marketer"])).await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let c = done.counts.unwrap();
    assert_eq!((c.failed, c.bounced), (1, 1), "{c:?}");
}
