//! Templates: validation on save, updates, permissions, and previews.

use crm_proto::crm::campaigns::v1 as pb;
use crm_testkit::auth::{customer_token, with_token};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Person, assert_error, email_template, spawn_app, violations};

fn arrears_sms() -> pb::Template {
    pb::Template {
        display_name: "Arrears".into(),
        channel: pb::Channel::Sms as i32,
        purpose: pb::Purpose::Transactional as i32,
        contents: vec![pb::TemplateContent {
            locale: "zh-CN".into(),
            body: "{{ customer.display_name }}您好，您的物业费欠费{{ vars.amount }}元，请于{{ vars.due }}前缴纳。".into(),
            ..Default::default()
        }],
        default_locale: "zh-CN".into(),
        locked_variables: vec!["amount".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_template_is_stored_read_listed_updated_and_deleted() {
    let app = spawn_app().await;
    let created = app.create_template(arrears_sms()).await.unwrap();
    assert!(created.name.starts_with("templates/"));
    assert_eq!(created.variables, vec!["amount", "due"], "the variables the text uses, sorted");

    let got = app.templates.clone().get_template(app.admin(pb::GetTemplateRequest { name: created.name.clone() })).await.unwrap();
    assert_eq!(got.into_inner().template.unwrap(), created);

    let mut edit = created.clone();
    edit.display_name = "Arrears (SMS)".into();
    let request = pb::UpdateTemplateRequest {
        template: Some(edit),
        update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
    };
    let updated = app.templates.clone().update_template(app.admin(request.clone())).await.unwrap().into_inner().template.unwrap();
    assert_eq!(updated.display_name, "Arrears (SMS)");
    assert_ne!(updated.etag, created.etag);
    // The same request again carries a stale etag now.
    assert_error(app.templates.clone().update_template(app.admin(request)).await, Code::Aborted, "ETAG_MISMATCH");

    let listed = app
        .templates
        .clone()
        .list_templates(app.as_roles(pb::ListTemplatesRequest { page_size: 0, page_token: String::new() }, &["analyst"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.templates, vec![updated.clone()]);

    app.templates
        .clone()
        .delete_template(app.admin(pb::DeleteTemplateRequest { name: updated.name.clone(), etag: updated.etag }))
        .await
        .unwrap();
    assert_error(
        app.templates.clone().get_template(app.admin(pb::GetTemplateRequest { name: updated.name })).await,
        Code::NotFound,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn bad_templates_are_refused_with_every_problem_named() {
    let app = spawn_app().await;
    let mut t = arrears_sms();
    t.contents[0].body = "您好 {{ customer.nickname }}，\n欠费 {{ vars.amount }".into();
    t.contents.push(pb::TemplateContent { locale: "en".into(), body: "Please pay.".into(), ..Default::default() });
    let status = assert_error(app.create_template(t).await, Code::InvalidArgument, "INVALID_FIELDS");
    let found = violations(&status);
    assert!(found.contains(&("template.contents[0].body".into(), "TEMPLATE_SYNTAX".into())), "{found:?}");
    let syntax = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .find(|v| v.field == "template.contents[0].body")
        .unwrap()
        .description
        .clone();
    assert!(syntax.starts_with("line 2, column "), "line and column: {syntax}");
    assert!(found.contains(&("template.contents[1]".into(), "LOCKED_VARIABLE_UNUSED".into())), "{found:?}");

    let mut unknown = arrears_sms();
    unknown.contents[0].body = "{{ customer.nickname }} {{ vars.amount }}".into();
    let status = assert_error(app.create_template(unknown).await, Code::InvalidArgument, "UNKNOWN_VARIABLE");
    assert_eq!(violations(&status), vec![("template.contents[0].body".to_owned(), "UNKNOWN_VARIABLE".to_owned())]);
}

#[tokio::test]
async fn only_marketers_and_admins_write_templates_and_customers_see_nothing() {
    let app = spawn_app().await;
    let create = |roles: &'static [&'static str]| {
        let request = app.as_roles(pb::CreateTemplateRequest { template: Some(arrears_sms()), request_id: String::new() }, roles);
        let mut client = app.templates.clone();
        async move { client.create_template(request).await }
    };
    assert!(create(&["marketer"]).await.is_ok());
    assert_error(create(&["agent"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let list = with_token(pb::ListTemplatesRequest::default(), &customer_token(app.tenant, &format!("customers/{}", uuid::Uuid::now_v7())));
    assert_error(app.templates.clone().list_templates(list).await, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_returns_the_first_template() {
    let app = spawn_app().await;
    let request = pb::CreateTemplateRequest { template: Some(arrears_sms()), request_id: "tpl-1".into() };
    let first = app.templates.clone().create_template(app.admin(request.clone())).await.unwrap().into_inner();
    let again = app.templates.clone().create_template(app.admin(request)).await.unwrap().into_inner();
    assert_eq!(first, again);
    let listed = app.templates.clone().list_templates(app.admin(pb::ListTemplatesRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.templates.len(), 1);
}

#[tokio::test]
async fn a_preview_renders_for_a_customer_and_counts_sms_segments() {
    let app = spawn_app().await;
    let template = app.create_template(arrears_sms()).await.unwrap();
    let customer = app.customer(Person { name: "李雷", phone: "+8613800138000", ..Person::default() }).await;
    let preview = |variables: &[(&str, &str)]| {
        let request = app.as_roles(
            pb::RenderPreviewRequest {
                template: template.name.clone(),
                customer: customer.clone(),
                variables: variables.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                locale: String::new(),
            },
            &["marketer"],
        );
        let mut client = app.templates.clone();
        async move { client.render_preview(request).await.unwrap().into_inner() }
    };

    let ok = preview(&[("amount", "328.00"), ("due", "11月30日")]).await;
    assert!(ok.problems.is_empty(), "{:?}", ok.problems);
    assert_eq!(ok.body, "李雷您好，您的物业费欠费328.00元，请于11月30日前缴纳。");
    let sms = ok.sms.unwrap();
    assert_eq!((sms.encoding, sms.units, sms.segments), (pb::SmsEncoding::Ucs2 as i32, ok.body.chars().count() as i32, 1));

    let long = "9".repeat(60);
    let bad = preview(&[("due", "月底"), ("amuont", "1"), ("amount", &long)]).await;
    let reasons: Vec<_> = bad.problems.iter().map(|p| (p.field.as_str(), p.reason.as_str())).collect();
    assert_eq!(reasons, vec![("variables.amuont", "UNKNOWN_VARIABLE")], "{:?}", bad.problems);
    assert_eq!(bad.sms.unwrap().segments, 2, "{} UCS-2 units is two parts of 67", bad.body.chars().count());

    let missing = preview(&[("due", "月底")]).await;
    let reasons: Vec<_> = missing.problems.iter().map(|p| p.reason.as_str()).collect();
    assert!(reasons.contains(&"MISSING_LOCKED_VARIABLE") && reasons.contains(&"UNDEFINED_VARIABLE"), "{reasons:?}");
}

#[tokio::test]
async fn an_email_preview_escapes_html_and_reports_the_contact_policy() {
    let app = spawn_app().await;
    let mut template = email_template(pb::Purpose::Marketing, "Hi {{ customer.given_name or customer.display_name }}", "Hello", &[]);
    template.contents[0].html_body = "<p>{{ vars.offer }}</p>".into();
    let template = app.create_template(template).await.unwrap();
    let customer = app.customer(Person { name: "Tom", email: "tom@example.com", ..Person::default() }).await;
    let request = pb::RenderPreviewRequest {
        template: template.name,
        customer,
        variables: [("offer".to_owned(), "<script>x</script>".to_owned())].into(),
        locale: String::new(),
    };
    let preview = app.templates.clone().render_preview(app.admin(request)).await.unwrap().into_inner();
    assert_eq!(preview.subject, "Hi Tom");
    assert_eq!(preview.html_body, "<p>&lt;script&gt;x&lt;&#x2f;script&gt;</p>");
    assert!(preview.sms.is_none());
    let reasons: Vec<_> = preview.problems.iter().map(|p| (p.field.as_str(), p.reason.as_str())).collect();
    assert_eq!(reasons, vec![("customer", "NO_CONSENT")], "marketing without opt-in would be skipped");
}

#[tokio::test]
async fn a_template_with_hundreds_of_problems_gets_a_readable_answer() {
    let app = spawn_app().await;
    let mut t = arrears_sms();
    t.contents = (0..20)
        .map(|i| pb::TemplateContent {
            locale: format!("x{i}"),
            body: (0..10).map(|j| format!("{{{{ customer.no_such_field_{j} }}}} ")).collect(),
            data: [("k".to_owned(), "v".to_owned())].into(),
            subject: "not for SMS".into(),
            ..Default::default()
        })
        .collect();
    let status = assert_error(app.create_template(t).await, Code::InvalidArgument, "INVALID_FIELDS");
    let listed = violations(&status);
    assert_eq!(listed.len(), 26, "25 violations and a note of how many more");
    assert_eq!(listed.last().unwrap().1, "TOO_MANY_VIOLATIONS");
}
