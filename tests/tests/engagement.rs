//! A recipient opens a marketing email and follows one of its links, through
//! the gateway as real processes (profiles, campaigns, gateway, an SMTP
//! server): the pixel is a real GIF that no cache may keep, the link is a
//! 302 redirect to where the template pointed, neither needs a login, and
//! both are counted on the campaign once.

use std::time::Duration;

use crm_e2e::{Reply, assert_ok, marketing::Marketing, path};
use crm_testkit::smtp::SmtpSink;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

#[tokio::test]
async fn an_opened_email_and_a_followed_link_are_counted_through_the_gateway() {
    // Arrange: the suite, a relay to a local SMTP server, an opted-in customer, an HTML newsletter.
    let smtp = SmtpSink::start().await;
    let suite = Marketing::start(&[]).await;
    let relay = json!({"displayName": "Relay", "channel": "CHANNEL_EMAIL",
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "SMTP_SECURITY_NONE", "fromAddress": "news@crm.example"}});
    assert_ok(&suite.call(&suite.admin, Method::POST, "/v1/providers", Some(relay)).await);
    suite
        .customer(json!({"emails": [{"address": "ada@example.com", "primary": true}],
            "consent": {"email": {"state": "CONSENT_STATE_OPTED_IN"}}}))
        .await;
    let template = suite
        .call(
            &suite.marketer,
            Method::POST,
            "/v1/templates",
            Some(json!({"displayName": "News", "channel": "CHANNEL_EMAIL", "purpose": "PURPOSE_MARKETING", "defaultLocale": "en",
                "contents": [{"locale": "en", "subject": "News", "body": "The sale: https://shop.example/sale",
                    "htmlBody": "<p>Hello {{ customer.display_name }}, see <a href=\"https://shop.example/sale?utm=mail\">the sale</a>.</p>"}]})),
        )
        .await;
    assert_ok(&template);
    let campaign = suite
        .call(
            &suite.marketer,
            Method::POST,
            "/v1/campaigns",
            Some(json!({"displayName": "News", "template": template.body["name"], "audience": {"filter": "tags:\"news\""}})),
        )
        .await;
    assert_ok(&campaign);
    let campaign = path(&campaign.body["name"]);
    assert_ok(&suite.call(&suite.marketer, Method::POST, &format!("{campaign}:start"), Some(json!({}))).await);

    // Act: the email arrives; the client loads the pixel, the reader follows the link (no login either time).
    let mail = smtp.wait_for(1, Duration::from_secs(30)).await.remove(0);
    let html = mail.html_part().expect("an HTML part");
    let url_after = |marker: &str| {
        let start = html.find(marker).unwrap_or_else(|| panic!("{marker} in {html}"));
        let from = html[..start].rfind('"').unwrap() + 1;
        suite.here(&html[from..start + marker.len() + html[start + marker.len()..].find('"').unwrap()])
    };
    let pixel = suite.http.get(url_after(":open")).send().await.unwrap();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let click = no_redirects.get(url_after(":click?link=0")).send().await.unwrap();

    // Assert: a GIF nobody caches, a redirect to the template's link, both counted once.
    assert_eq!(pixel.status(), StatusCode::OK);
    assert_eq!(pixel.headers()[header::CONTENT_TYPE], "image/gif");
    assert_eq!(pixel.headers()[header::CACHE_CONTROL], "no-store, private");
    assert!(pixel.bytes().await.unwrap().starts_with(b"GIF89a"));
    assert_eq!(click.status(), StatusCode::FOUND);
    assert_eq!(click.headers()[header::LOCATION], "https://shop.example/sale?utm=mail");
    assert_eq!(suite.count(&campaign, "opened", 1).await, 1);
    assert_eq!(suite.count(&campaign, "clicked", 1).await, 1);

    // A forged link is refused by campaigns, in the JSON error format.
    let forged = url_after(":click?link=0").replacen("trackingLinks/", "trackingLinks/A", 1);
    let refused = Reply::read(no_redirects.get(&forged).send().await.unwrap()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{:#}", refused.body);
    assert_eq!(refused.reason(), "INVALID_TRACKING_LINK");
}
