//! The knowledge base: Chinese and English search, versions, suggestions, links.

use crm_proto::crm::tickets::v1::{self as pb, article_service_client::ArticleServiceClient};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn client(suite: &TestApp) -> ArticleServiceClient<tonic::transport::Channel> {
    ArticleServiceClient::new(suite.channel.clone())
}

async fn create(suite: &TestApp, title: &str, body: &str, locale: &str, status: pb::ArticleStatus) -> pb::Article {
    let article =
        pb::Article { title: title.into(), body: body.into(), locale: locale.into(), status: status as i32, ..Default::default() };
    client(suite)
        .create_article(suite.as_roles(pb::CreateArticleRequest { request_id: String::new(), article: Some(article) }, &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap()
}

async fn search(suite: &TestApp, query: &str, roles: &[&str], include_unpublished: bool) -> Vec<String> {
    let request = suite.as_roles(pb::SearchArticlesRequest { query: query.into(), include_unpublished, ..Default::default() }, roles);
    client(suite).search_articles(request).await.unwrap().into_inner().hits.into_iter().map(|h| h.article.unwrap().title).collect()
}

#[tokio::test]
async fn search_finds_chinese_and_english_articles_best_first_and_hides_drafts() {
    let suite = spawn_app().await;
    create(&suite, "How to reset your password", "Open the login page and click 'Forgot password'.", "en", pb::ArticleStatus::Published)
        .await;
    create(&suite, "如何重置密码", "在登录页面点击“忘记密码”，按提示重置密码。", "zh-CN", pb::ArticleStatus::Published).await;
    create(&suite, "退款政策", "订单签收后七天内可申请退款。", "zh-CN", pb::ArticleStatus::Published).await;
    create(&suite, "Internal: password tooling", "draft notes about password resets", "en", pb::ArticleStatus::Draft).await;

    assert_eq!(search(&suite, "reset password", &["readonly"], false).await, ["How to reset your password"]);
    assert_eq!(search(&suite, "忘记密码了怎么办", &["readonly"], false).await, ["如何重置密码"]);
    assert_eq!(search(&suite, "退款", &["readonly"], false).await, ["退款政策"]);
    assert_eq!(search(&suite, "password", &["agent"], true).await.len(), 2, "agents may include drafts");
    let denied = client(&suite)
        .search_articles(suite.as_roles(
            pb::SearchArticlesRequest { query: "password".into(), include_unpublished: true, ..Default::default() },
            &["readonly"],
        ))
        .await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
    let empty =
        client(&suite).search_articles(suite.admin(pb::SearchArticlesRequest { query: "  !!! ".into(), ..Default::default() })).await;
    assert_error(empty, Code::InvalidArgument, "INVALID_QUERY");
}

#[tokio::test]
async fn text_changes_make_versions_and_drafts_stay_hidden_from_readers() {
    let suite = spawn_app().await;
    let draft = create(&suite, "Shipping times", "Usually 3 days.", "en", pb::ArticleStatus::Draft).await;
    let hidden = client(&suite).get_article(suite.as_roles(pb::GetArticleRequest { name: draft.name.clone() }, &["readonly"])).await;
    assert_error(hidden, Code::NotFound, "NOT_FOUND");
    let update = |article: pb::Article, paths: &[&str]| {
        suite.as_roles(
            pb::UpdateArticleRequest {
                article: Some(article),
                update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
            },
            &["agent"],
        )
    };
    let edited = client(&suite)
        .update_article(update(pb::Article { name: draft.name.clone(), body: "Usually 2 days.".into(), ..Default::default() }, &["body"]))
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!(edited.version, 2);
    let published = client(&suite)
        .update_article(update(
            pb::Article { name: draft.name.clone(), status: pb::ArticleStatus::Published as i32, ..Default::default() },
            &["status"],
        ))
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!(published.version, 2, "publishing is not a new version");
    let stale = client(&suite)
        .update_article(update(
            pb::Article { name: draft.name.clone(), title: "x".into(), etag: draft.etag.clone(), ..Default::default() },
            &["title"],
        ))
        .await;
    assert_error(stale, Code::Aborted, "ETAG_MISMATCH");
    let versions =
        client(&suite)
            .list_article_versions(suite.as_roles(
                pb::ListArticleVersionsRequest { page_size: 0, page_token: String::new(), parent: draft.name.clone() },
                &["agent"],
            ))
            .await
            .unwrap()
            .into_inner()
            .versions;
    assert_eq!(versions.iter().map(|v| (v.version, v.body.as_str())).collect::<Vec<_>>(), [(2, "Usually 2 days."), (1, "Usually 3 days.")]);
    assert!(client(&suite).get_article(suite.as_roles(pb::GetArticleRequest { name: draft.name.clone() }, &["readonly"])).await.is_ok());
}

#[tokio::test]
async fn tickets_get_suggestions_and_a_published_answer_can_be_linked() {
    let suite = spawn_app().await;
    let answer = create(&suite, "如何重置密码", "在登录页面点击“忘记密码”。", "zh-CN", pb::ArticleStatus::Published).await;
    let draft = create(&suite, "重置密码（草稿）", "未发布", "zh-CN", pb::ArticleStatus::Draft).await;
    let ticket = pb::Ticket {
        customer: suite.customer("王芳").await,
        subject: "忘记密码".into(),
        description: "无法登录，想重置密码".into(),
        ..Default::default()
    };
    let ticket = suite
        .tickets
        .clone()
        .create_ticket(suite.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let hits = client(&suite)
        .suggest_articles(suite.as_roles(pb::SuggestArticlesRequest { ticket: ticket.name.clone() }, &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(
        hits.iter().map(|h| h.article.as_ref().unwrap().name.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&answer.name),
        "drafts are never suggested"
    );

    let link =
        |article: &str| suite.as_roles(pb::LinkArticleToTicketRequest { ticket: ticket.name.clone(), article: article.into() }, &["agent"]);
    assert_error(client(&suite).link_article_to_ticket(link(&draft.name)).await, Code::InvalidArgument, "ARTICLE_NOT_PUBLISHED");
    let linked = client(&suite).link_article_to_ticket(link(&answer.name)).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(linked.answer_article, answer.name);
}

#[tokio::test]
async fn text_postgres_cannot_store_is_invalid_argument_not_internal() {
    // Found by schemathesis through the gateway: a NUL in an article's tag was a 500.
    let suite = spawn_app().await;
    let article = pb::Article { title: "Printer".into(), tags: vec!["a\0b".into()], ..Default::default() };
    let result =
        client(&suite).create_article(suite.admin(pb::CreateArticleRequest { request_id: String::new(), article: Some(article) })).await;
    assert_error(result, Code::InvalidArgument, "INVALID_CHARACTERS");
    // Ticket text says which field.
    let ticket = pb::Ticket { customer: suite.customer("Ada").await, subject: "Printer\0".into(), ..Default::default() };
    let status = suite
        .tickets
        .clone()
        .create_ticket(suite.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!((violation.field.as_str(), violation.reason.as_str()), ("ticket.subject", "INVALID_CHARACTERS"));
}
