//! Notices: from SendNotice through the ledger to a real SMTP server, exactly once.

use std::time::Duration;

use crm_proto::crm::campaigns::v1 as pb;
use tonic::Code;

use crate::helpers::{Person, assert_error, email_template, spawn_app, spawn_app_with, violations};

fn fee_notice() -> pb::Template {
    email_template(
        pb::Purpose::Transactional,
        "Your fee notice",
        "Dear {{ customer.display_name }}, your fee of {{ vars.amount }} is due.",
        &["amount"],
    )
}

#[tokio::test]
async fn a_notice_reaches_the_smtp_server_once_and_the_ledger_says_so() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(fee_notice()).await.unwrap();
    let customer = app.customer(Person { name: "Li Lei", email: "li.lei@example.com", ..Person::default() }).await;

    let accepted = app.send_notice(&template.name, &customer, &[("amount", "¥328.00")], "fee-2026-11-li").await.unwrap();
    assert_eq!(accepted.status, pb::DeliveryStatus::Queued as i32);
    assert_eq!(accepted.kind, pb::DeliveryKind::Notice as i32);
    assert_eq!(accepted.recipient, "li.lei@example.com", "an agent holds pii");
    assert_eq!(accepted.body, "Dear Li Lei, your fee of ¥328.00 is due.");

    let sent = app.settled(&accepted.name).await;
    assert_eq!(sent.status, pb::DeliveryStatus::Sent as i32, "{sent:?}");
    assert_eq!(sent.attempts, 1);
    assert!(sent.send_time.is_some());
    let id = accepted.name.trim_start_matches("deliveries/");
    assert_eq!(sent.provider_message_id, format!("<{id}@crm.example>"));

    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].rcpt_tos, vec!["li.lei@example.com"]);
    assert_eq!(mail[0].mail_from, "notices@crm.example");
    assert_eq!(mail[0].message_id, sent.provider_message_id);
    assert_eq!(mail[0].subject, "Your fee notice");
    assert!(mail[0].data.contains("your fee of"), "{}", mail[0].data);

    // The sender retries (a timeout on its side, say): the same delivery, nothing sent again.
    let again = app.send_notice(&template.name, &customer, &[("amount", "¥328.00")], "fee-2026-11-li").await.unwrap();
    assert_eq!(again.name, accepted.name);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.smtp.messages().len(), 1, "a retried notice is not sent twice");
    // The same request id with another amount is another request: refused, not sent.
    let reused = app.send_notice(&template.name, &customer, &[("amount", "¥1.00")], "fee-2026-11-li").await;
    assert_error(reused, Code::InvalidArgument, "REQUEST_ID_REUSED");
}

#[tokio::test]
async fn concurrent_retries_of_one_notice_make_one_message() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(fee_notice()).await.unwrap();
    let customer = app.customer(Person { name: "Han Meimei", email: "han@example.com", ..Person::default() }).await;
    let sends = (0..8).map(|_| app.send_notice(&template.name, &customer, &[("amount", "12")], "same-request"));
    let results = futures::future::join_all(sends).await;
    let names: std::collections::BTreeSet<_> = results.into_iter().map(|r| r.unwrap().name).collect();
    assert_eq!(names.len(), 1, "one delivery for eight concurrent sends");
    app.settled(names.first().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_notice_is_refused_without_its_locked_variable_or_a_request_id() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(fee_notice()).await.unwrap();
    let customer = app.customer(Person { name: "Li Lei", email: "li@example.com", ..Person::default() }).await;

    let status =
        assert_error(app.send_notice(&template.name, &customer, &[("amonut", "1")], "r1").await, Code::InvalidArgument, "INVALID_FIELDS");
    let found = violations(&status);
    assert!(found.contains(&("variables.amount".into(), "MISSING_LOCKED_VARIABLE".into())), "{found:?}");
    assert!(found.contains(&("variables.amonut".into(), "UNKNOWN_VARIABLE".into())), "{found:?}");

    let status = assert_error(app.send_notice(&template.name, &customer, &[("amount", "1")], "").await, Code::InvalidArgument, "REQUIRED");
    assert_eq!(violations(&status), vec![("request_id".to_owned(), "REQUIRED".to_owned())]);

    let stranger = format!("customers/{}", uuid::Uuid::now_v7());
    let status =
        assert_error(app.send_notice(&template.name, &stranger, &[("amount", "1")], "r2").await, Code::InvalidArgument, "UNKNOWN_CUSTOMER");
    assert_eq!(violations(&status), vec![("customer".to_owned(), "UNKNOWN_CUSTOMER".to_owned())]);

    assert!(app.list_deliveries("", &["admin"]).await.unwrap().is_empty(), "refused notices leave no trace in the ledger");
    assert!(app.smtp.messages().is_empty());
}

#[tokio::test]
async fn without_a_provider_a_notice_fails_its_precondition() {
    let app = spawn_app().await;
    let template = app.create_template(fee_notice()).await.unwrap();
    let customer = app.customer(Person { name: "Li Lei", email: "li@example.com", ..Person::default() }).await;
    assert_error(app.send_notice(&template.name, &customer, &[("amount", "1")], "r1").await, Code::FailedPrecondition, "NO_PROVIDER");
}

#[tokio::test]
async fn a_customer_disabled_in_profiles_gets_notices_but_no_marketing() {
    let app = spawn_app().await;
    app.email_provider().await;
    let promo =
        app.create_template(email_template(pb::Purpose::Marketing, "Offer", "Hello {{ customer.display_name }}", &[])).await.unwrap();
    let fan = app.customer(Person { name: "Fan", email: "fan@example.com", email_opt_in: true, ..Person::default() }).await;
    let disable =
        crm_proto::crm::profiles::v1::DisableCustomerRequest { name: fan.clone(), reason: "moved away".into(), etag: String::new() };
    app.customers.clone().disable_customer(app.admin(disable)).await.unwrap();

    let skipped = app.send_notice(&promo.name, &fan, &[], "d1").await.unwrap();
    assert_eq!((skipped.status, skipped.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::CustomerDisabled as i32));
    let fee = app.create_template(fee_notice()).await.unwrap();
    let notice = app.send_notice(&fee.name, &fan, &[("amount", "5")], "d2").await.unwrap();
    assert_eq!(app.settled(&notice.name).await.status, pb::DeliveryStatus::Sent as i32, "a fee notice still reaches them");
}

#[tokio::test]
async fn the_contact_policy_skips_marketing_without_consent_and_records_why() {
    let app = spawn_app().await;
    app.email_provider().await;
    let promo =
        app.create_template(email_template(pb::Purpose::Marketing, "Offer", "Hello {{ customer.display_name }}", &[])).await.unwrap();
    let refuser = app.customer(Person { name: "No", email: "no@example.com", ..Person::default() }).await;
    let fan = app.customer(Person { name: "Yes", email: "yes@example.com", email_opt_in: true, ..Person::default() }).await;
    let no_address = app.customer(Person { name: "Nobody", ..Person::default() }).await;

    let skipped = app.send_notice(&promo.name, &refuser, &[], "p1").await.unwrap();
    assert_eq!((skipped.status, skipped.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::NoConsent as i32));
    let sent = app.send_notice(&promo.name, &fan, &[], "p2").await.unwrap();
    assert_eq!(app.settled(&sent.name).await.status, pb::DeliveryStatus::Sent as i32);
    // A transactional notice goes to a customer who refused marketing; nobody reaches a missing address.
    let fee = app.create_template(fee_notice()).await.unwrap();
    let notice = app.send_notice(&fee.name, &refuser, &[("amount", "5")], "p3").await.unwrap();
    assert_eq!(app.settled(&notice.name).await.status, pb::DeliveryStatus::Sent as i32);
    let unreachable = app.send_notice(&fee.name, &no_address, &[("amount", "5")], "p4").await.unwrap();
    assert_eq!(unreachable.skip_reason, pb::SkipReason::NoAddress as i32);

    let mail = app.smtp.wait_for(2, Duration::from_secs(5)).await;
    let mut to: Vec<_> = mail.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    to.sort();
    assert_eq!(to, vec!["no@example.com", "yes@example.com"]);
    let skipped = app.list_deliveries("status = SKIPPED", &["analyst"]).await.unwrap();
    let mut reasons: Vec<_> = skipped.iter().map(|d| d.skip_reason).collect();
    reasons.sort();
    assert_eq!(reasons, vec![pb::SkipReason::NoAddress as i32, pb::SkipReason::NoConsent as i32]);
}

#[tokio::test]
async fn refusals_by_the_relay_fail_for_good_or_retry_with_backoff() {
    let app = spawn_app_with(|c| c.delivery_max_attempts = 3).await;
    app.email_provider().await;
    let fee = app.create_template(fee_notice()).await.unwrap();
    let rejected = app.customer(Person { name: "R", email: "reject-me@example.com", ..Person::default() }).await;
    let busy = app.customer(Person { name: "B", email: "busy-box@example.com", ..Person::default() }).await;
    let flaky = app.customer(Person { name: "F", email: "flaky-box@example.com", ..Person::default() }).await;

    let r = app.send_notice(&fee.name, &rejected, &[("amount", "1")], "n1").await.unwrap();
    let b = app.send_notice(&fee.name, &busy, &[("amount", "1")], "n2").await.unwrap();
    let f = app.send_notice(&fee.name, &flaky, &[("amount", "1")], "n3").await.unwrap();

    let r = app.settled(&r.name).await;
    assert_eq!((r.status, r.attempts), (pb::DeliveryStatus::Failed as i32, 1), "a 550 is not retried: {r:?}");
    assert!(r.error.contains("550"), "{}", r.error);
    assert!(!r.error.contains("reject-me@example.com"), "no address in the error: {}", r.error);
    let b = app.settled(&b.name).await;
    assert_eq!((b.status, b.attempts), (pb::DeliveryStatus::Failed as i32, 3), "451s are retried up to the limit: {b:?}");
    assert!(b.error.contains("gave up after 3 attempts"), "{}", b.error);
    let f = app.settled(&f.name).await;
    assert_eq!((f.status, f.attempts), (pb::DeliveryStatus::Sent as i32, 2), "one 451, then accepted: {f:?}");
    let mail = app.smtp.messages();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].rcpt_tos, vec!["flaky-box@example.com"]);

    // The 550 5.1.1 was a hard bounce: the address is suppressed for every
    // later message, whatever its purpose; the customer's consent is untouched.
    let again = app.send_notice(&fee.name, &rejected, &[("amount", "2")], "n4").await.unwrap();
    let again = app.settled(&again.name).await;
    assert_eq!((again.status, again.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::Suppressed as i32), "{again:?}");
    assert_eq!(again.attempts, 0, "nothing was handed to the relay");
    let busy_again = app.send_notice(&fee.name, &busy, &[("amount", "2")], "n5").await.unwrap();
    assert_ne!(app.settled(&busy_again.name).await.skip_reason, pb::SkipReason::Suppressed as i32, "busy mailboxes are not bounces");
    let suppressed = app.list_deliveries("skip_reason = SUPPRESSED", &["analyst"]).await.unwrap();
    assert_eq!(suppressed.len(), 1);
}
