//! DKIM: an SMTP provider with a signing key signs every message, and the
//! reference verifier (dkimpy, given the key's DNS record) accepts what the
//! SMTP server received — and rejects it once altered. The key is write-only
//! and checked on save.

use std::{io::Write, process::Stdio};

use base64::{Engine, engine::general_purpose::STANDARD};
use crm_proto::crm::campaigns::v1 as pb;
use rsa::{
    RsaPrivateKey,
    pkcs1::{EncodeRsaPrivateKey, LineEnding},
    pkcs8::EncodePublicKey,
};
use tonic::Code;

use crate::helpers::{Person, assert_error, email_template, spawn_app, violations};

/// A fresh RSA key: its PKCS#1 PEM and the `p=` value of its DNS record.
fn keypair() -> (String, String) {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("a key");
    let pem = key.to_pkcs1_pem(LineEnding::LF).expect("PEM").to_string();
    let public = STANDARD.encode(key.to_public_key().to_public_key_der().expect("DER").as_bytes());
    (pem, public)
}

/// Whether dkimpy verifies `message` against `public_key`, and what it said.
fn verify(message: &str, public_key: &str) -> (bool, String) {
    let python = std::env::var("CRM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/dkim_verify.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .arg(public_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn a_provider_with_a_dkim_key_signs_every_message_and_the_reference_verifier_agrees() {
    let app = spawn_app().await;
    let (pem, public) = keypair();
    let provider = app
        .email_provider_with(0, |smtp| {
            smtp.dkim_domain = "crm.example".into();
            smtp.dkim_selector = "s2026".into();
            smtp.dkim_private_key = pem.clone();
        })
        .await
        .unwrap();
    let Some(pb::provider::Settings::Smtp(smtp)) = &provider.settings else { panic!("{provider:?}") };
    assert!(smtp.dkim_private_key_set && smtp.dkim_private_key.is_empty(), "write-only: {smtp:?}");
    let template =
        app.create_template(email_template(pb::Purpose::Transactional, "Your bill", "Due soon: {{ vars.amount }}.", &["amount"])).await;
    let customer = app.customer(Person { name: "Ada", email: "ada@example.com", ..Person::default() }).await;
    let sent = app.send_notice(&template.unwrap().name, &customer, &[("amount", "¥328.00")], "bill-1").await.unwrap();
    assert_eq!(app.settled(&sent.name).await.status, pb::DeliveryStatus::Sent as i32);

    let mail = app.smtp.messages().remove(0);
    let header = mail.data.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ").replace("\r\n\t", " ");
    let signature = header.lines().find(|l| l.starts_with("DKIM-Signature:")).unwrap_or_else(|| panic!("signed: {header}")).to_owned();
    assert!(signature.contains("d=crm.example") && signature.contains("s=s2026") && signature.contains("a=rsa-sha256"), "{signature}");
    let (ok, said) = verify(&mail.data, &public);
    assert!(ok, "dkimpy verifies what the server received: {said}");
    // The check can fail: an altered body, or another domain's key, does not verify.
    let (ok, _) = verify(&mail.data.replace("Due soon", "Paid"), &public);
    assert!(!ok, "an altered message must not verify");
    let (ok, _) = verify(&mail.data, &keypair().1);
    assert!(!ok, "another key must not verify");

    // An update that leaves the key empty keeps it; clearing the domain turns signing off and drops it.
    let update = |smtp: pb::SmtpSettings| {
        let provider = pb::Provider { settings: Some(pb::provider::Settings::Smtp(smtp)), etag: String::new(), ..provider.clone() };
        let mask = prost_types::FieldMask { paths: vec!["smtp".into()] };
        app.admin(pb::UpdateProviderRequest { provider: Some(provider), update_mask: Some(mask) })
    };
    let renamed = pb::SmtpSettings { from_name: "Billing".into(), ..smtp.clone() };
    let kept = app.providers.clone().update_provider(update(renamed)).await.unwrap().into_inner().provider.unwrap();
    let Some(pb::provider::Settings::Smtp(kept)) = kept.settings else { panic!() };
    assert!(kept.dkim_private_key_set, "the stored key is kept");
    let unsigned = pb::SmtpSettings { dkim_domain: String::new(), dkim_selector: String::new(), ..kept };
    let off = app.providers.clone().update_provider(update(unsigned)).await.unwrap().into_inner().provider.unwrap();
    let Some(pb::provider::Settings::Smtp(off)) = off.settings else { panic!() };
    assert!(!off.dkim_private_key_set, "no domain, no key");
}

#[tokio::test]
async fn dkim_settings_are_checked_on_save() {
    let app = spawn_app().await;
    let (pem, _) = keypair();
    let bad_key = app
        .email_provider_with(0, |smtp| {
            smtp.dkim_domain = "crm.example".into();
            smtp.dkim_selector = "s1".into();
            smtp.dkim_private_key = "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----".into();
        })
        .await;
    let status = assert_error(bad_key, Code::InvalidArgument, "INVALID_DKIM_KEY");
    assert!(violations(&status).contains(&("provider.smtp.dkim_private_key".into(), "INVALID_DKIM_KEY".into())), "{status:?}");
    let no_selector = app
        .email_provider_with(0, |smtp| {
            smtp.dkim_domain = "crm.example".into();
            smtp.dkim_private_key = pem.clone();
        })
        .await;
    assert_error(no_selector, Code::InvalidArgument, "DKIM_INCOMPLETE");
    let no_key = app
        .email_provider_with(0, |smtp| {
            smtp.dkim_domain = "crm.example".into();
            smtp.dkim_selector = "s1".into();
        })
        .await;
    assert_error(no_key, Code::InvalidArgument, "REQUIRED");
}
