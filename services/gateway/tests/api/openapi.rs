//! `/openapi.json` and `/docs`: the document describes every route the
//! gateway serves, in the proto3 JSON mapping, and the page and its script
//! are served from the binary without a token. The document needs no backend
//! (channels are lazy), so these tests start the gateway alone.

use std::collections::HashSet;

use crm_gateway::{
    config::Config,
    openapi,
    routes::{BackendMap, RouteTable},
    startup::Application,
};
use crm_testkit::auth::jwt_secret;
use prost_reflect::DescriptorPool;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const BACKENDS: &str = "crm.profiles.v1=http://127.0.0.1:1,crm.tickets.v1=http://127.0.0.1:1";

/// A gateway in front of nothing; dropping the sender stops it.
async fn spawn_docs_gateway() -> (String, oneshot::Sender<()>) {
    let app = Application::build(Config::for_tests(BACKENDS, &jwt_secret())).await.expect("the gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (base, stop)
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.expect("the gateway answers")
}

async fn fetch_document() -> Value {
    let (base, _stop) = spawn_docs_gateway().await;
    let response = get(&format!("{base}/openapi.json")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("the document is JSON")
}

/// Every operation of the document as (path, verb, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (verb, operation) in item.as_object().expect("a path item") {
            out.push((path.clone(), verb.clone(), operation.clone()));
        }
    }
    out
}

fn operation<'a>(document: &'a Value, path: &str, verb: &str) -> &'a Value {
    let op = &document["paths"][path][verb];
    assert!(op.is_object(), "no {verb} {path} in {:?}", document["paths"].as_object().map(|p| p.keys().collect::<Vec<_>>()));
    op
}

fn parameter<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no parameter {name} in {op:#}"))
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no component {name}");
    schema
}

/// The UUID form path parameters take.
const UUID_PATTERN_TEXT: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

fn schema_ref(name: &str) -> Value {
    json!(format!("#/components/schemas/{name}"))
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_one_operation_per_route() {
    // Act
    let document = fetch_document().await;

    // Assert
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "CRM API");
    let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
    let table = RouteTable::from_pool(&pool, &BackendMap::parse(BACKENDS).unwrap()).unwrap();
    let ops = operations(&document);
    assert_eq!(ops.len(), table.routes().len(), "one operation per route");
    let ids: HashSet<&str> = ops.iter().map(|(_, _, op)| op["operationId"].as_str().expect("an operationId")).collect();
    assert_eq!(ids.len(), ops.len(), "operationIds are unique");
    for (path, verb, op) in &ops {
        assert_eq!(op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"], schema_ref("Error"), "{verb} {path}");
        assert!(op["responses"]["200"].is_object(), "{verb} {path}");
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{verb} {path}");
        // Every {param} of the path is declared, and nothing else is declared in the path.
        let declared: HashSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        let in_path: HashSet<&str> = path.split(['{', '}']).skip(1).step_by(2).collect();
        assert_eq!(declared, in_path, "{verb} {path}");
    }
    // Every $ref resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        schema(&document, name);
    }
}

#[tokio::test]
async fn customer_operations_have_their_parameters_body_and_responses() {
    let document = fetch_document().await;

    let get_customer = operation(&document, "/v1/customers/{customer}", "get");
    assert_eq!(get_customer["operationId"], "CustomerService_GetCustomer");
    assert_eq!(get_customer["tags"], json!(["CustomerService"]));
    let customer = parameter(get_customer, "customer");
    assert_eq!((&customer["in"], &customer["required"]), (&json!("path"), &json!(true)));
    // Server-assigned ids ("customers/{uuidv7}" in the resource's comment) have the UUID form;
    // ids callers choose (an agent's, a holiday's), tokens and singletons stay free strings.
    assert_eq!(customer["schema"]["format"], "uuid");
    assert!(customer["schema"]["pattern"].as_str().is_some_and(|p| p.starts_with("^[0-9a-fA-F]{8}-")), "{customer}");
    let transaction = operation(&document, "/v1/customers/{customer}/transactions/{transaction}", "get");
    assert_eq!(parameter(transaction, "transaction")["schema"]["format"], "uuid");
    // A parent may be `-` (AIP-159) where the call offers it ("customers/-" in its comment), and only there.
    let any_parent = parameter(operation(&document, "/v1/customers/{customer}/renameRequests", "get"), "customer");
    assert!(any_parent["schema"]["pattern"].as_str().is_some_and(|p| p.starts_with("^(?:-|[0-9a-fA-F]{8}-")), "{any_parent}");
    let one_parent = parameter(operation(&document, "/v1/customers/{customer}/paymentAccounts", "get"), "customer");
    assert_eq!(one_parent["schema"]["pattern"], UUID_PATTERN_TEXT, "{one_parent}");
    let member_path = operation(&document, "/v1/teams/{team}/members/{member}", "delete");
    assert_eq!(parameter(member_path, "team")["schema"]["format"], "uuid");
    let member = parameter(member_path, "member");
    assert!(member["schema"].get("pattern").is_none() && member["schema"].get("format").is_none(), "an agent id: {member}");
    assert_eq!(
        get_customer["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        schema_ref("crm.profiles.v1.Customer"),
        "response_body: a standard Get answers with the resource itself"
    );
    assert!(get_customer.get("requestBody").is_none());

    // body: "customer" → the body is a Customer, whose REQUIRED fields bind on create only.
    let create = operation(&document, "/v1/customers", "post");
    let body = &create["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["allOf"][0]["$ref"], schema_ref("crm.profiles.v1.Customer"));
    assert_eq!(body["required"], json!(["displayName"]));
    assert_eq!(body["properties"]["displayName"], json!({ "minLength": 1, "pattern": "\\S" }), "a blank name is refused");
    // A field naming a resource whose ids are UUIDs has the name's form (or is empty: not set).
    let ticket_customer = &schema(&document, "crm.tickets.v1.Ticket")["properties"]["customer"];
    let pattern = ticket_customer["pattern"].as_str().expect("a name pattern");
    assert!(pattern.starts_with("^$|^(?:customers/[0-9a-fA-F]{8}-"), "{pattern}");
    // update_mask comes from the query.
    let update = operation(&document, "/v1/customers/{customer}", "patch");
    assert_eq!(update["requestBody"]["content"]["application/json"]["schema"]["$ref"], schema_ref("crm.profiles.v1.Customer"));
    let mask = parameter(update, "updateMask");
    assert_eq!(mask["in"], "query");
    let paths = mask["schema"]["pattern"].as_str().expect("the paths a mask can name");
    assert!(paths.starts_with("^(?:\\*|(?:") && paths.contains("displayName") && !paths.contains("createTime"), "{paths}");
    let list = operation(&document, "/v1/customers", "get");
    assert_eq!(parameter(list, "pageSize")["schema"]["minimum"], 0, "AIP-158: negative sizes are refused");
    // A REQUIRED field of the request that comes in the query is a required parameter.
    let metrics = operation(&document, "/v1/serviceMetrics", "get");
    assert_eq!((&parameter(metrics, "startTime")["required"], &parameter(metrics, "groupBy")["required"]), (&json!(true), &json!(false)));
    assert_eq!(parameter(update, "If-Match")["in"], "header");
    assert!(update["responses"]["200"]["headers"]["ETag"].is_object());

    let list = operation(&document, "/v1/customers", "get");
    assert_eq!(parameter(list, "pageSize")["schema"]["type"], "integer");
    assert_eq!(parameter(list, "filter")["schema"]["type"], "string");

    // body: "*" with a path variable: the body is the request minus the path field.
    let undelete = operation(&document, "/v1/customers/{customer}:undelete", "post");
    let body = &undelete["requestBody"]["content"]["application/json"]["schema"];
    assert!(body["properties"].get("name").is_none(), "{body:#}");
    assert!(body["properties"].get("etag").is_some(), "{body:#}");

    // The proto3 JSON mapping.
    let customer = schema(&document, "crm.profiles.v1.Customer");
    assert_eq!(customer["additionalProperties"], false);
    let properties = &customer["properties"];
    assert_eq!(properties["displayName"]["type"], "string");
    assert_eq!(properties["createTime"]["format"], "date-time");
    assert_eq!(properties["createTime"]["readOnly"], true);
    assert_eq!(properties["emails"]["type"], "array");
    assert!(properties["displayName"]["description"].as_str().unwrap().starts_with("Required."), "{:#}", properties["displayName"]);
    let member = schema(&document, "crm.tickets.v1.TeamMember");
    assert_eq!(member["properties"]["openTickets"]["type"], "string", "int64 is a JSON string");
    let ticket = schema(&document, "crm.tickets.v1.Ticket");
    let status = &ticket["properties"]["status"];
    assert_eq!(status["type"], "string");
    assert!(status["enum"].as_array().unwrap().iter().any(|v| v == "STATUS_OPEN"), "{status:#}");
    assert!(customer["description"].as_str().is_some_and(|d| !d.is_empty()), "comments become descriptions");

    let error = schema(&document, "Error");
    assert_eq!(error["properties"]["error"]["required"], json!(["code", "message", "status"]));
    assert_eq!(error["properties"]["error"]["properties"]["details"]["items"]["required"], json!(["@type"]));
}

#[tokio::test]
async fn import_files_are_described_as_binary_bodies() {
    let document = fetch_document().await;

    // The upload: the raw file or a form, the other fields from the query.
    let upload = operation(&document, "/v1/importJobs:upload", "post");
    let content = &upload["requestBody"]["content"];
    assert_eq!(content["application/octet-stream"]["schema"], json!({ "type": "string", "format": "binary" }));
    let form = &content["multipart/form-data"]["schema"];
    assert_eq!((&form["required"], &form["properties"]["file"]["format"]), (&json!(["file"]), &json!("binary")));
    for query in ["fileName", "encoding", "requestId", "kind"] {
        assert_eq!(parameter(upload, query)["in"], "query");
    }
    assert!(upload["parameters"].as_array().unwrap().iter().all(|p| !p["name"].as_str().unwrap().starts_with("file.")));
    assert_eq!(upload["responses"]["200"]["content"]["application/json"]["schema"]["$ref"], schema_ref("crm.profiles.v1.ImportJob"));

    // The download: CSV bytes (the media type its proto comment names), errors as JSON.
    let download = operation(&document, "/v1/importJobs/{importJob}/errors:download", "get");
    assert_eq!(download["responses"]["200"]["content"], json!({ "text/csv": { "schema": { "type": "string", "format": "binary" } } }));
    assert_eq!(download["responses"]["default"]["content"]["application/json"]["schema"]["$ref"], schema_ref("Error"));
    assert!(download["responses"].get("302").is_none());
}

#[tokio::test]
async fn bearer_tokens_are_required_except_for_public_methods() {
    let document = fetch_document().await;

    let scheme = &document["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!((&scheme["type"], &scheme["scheme"], &scheme["bearerFormat"]), (&json!("http"), &json!("bearer"), &json!("JWT")));
    assert_eq!(document["security"], json!([{"bearerAuth": []}]));
    assert_eq!(operation(&document, "/v1/surveys:answer", "post")["security"], json!([]));
    assert!(operation(&document, "/v1/customers", "post").get("security").is_none());
}

#[tokio::test]
async fn the_docs_page_and_its_script_are_served_without_a_token() {
    let (base, _stop) = spawn_docs_gateway().await;

    let page = get(&format!("{base}/docs")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"spec-url="openapi.json""#) && html.contains(r#"src="docs/redoc.standalone.js""#), "{html}");

    let script = get(&format!("{base}/docs/redoc.standalone.js")).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let bytes = script.bytes().await.unwrap();
    assert_eq!(bytes.len(), include_bytes!("../../assets/redoc.standalone.js").len());
    assert_eq!(get(&format!("{base}/docs/redoc.standalone.js.LICENSE.txt")).await.status(), StatusCode::OK);
    // API routes still want a token.
    assert_eq!(get(&format!("{base}/v1/customers")).await.status(), StatusCode::UNAUTHORIZED);
}

/// Compiles `source` as `file` with the repository's protos on the include path.
fn compile(file: &str, source: &str) -> DescriptorPool {
    let dir = std::env::temp_dir().join(format!("crm-gateway-openapi-{}", uuid::Uuid::new_v4()));
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, source).unwrap();
    let protos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    // protox's own pool keeps extension options and source info.
    let compiled = protox::Compiler::new([dir.as_path(), protos.as_path()])
        .unwrap()
        .include_imports(true)
        .include_source_info(true)
        .open_file(file)
        .map(|c| c.descriptor_pool());
    std::fs::remove_dir_all(&dir).unwrap();
    compiled.unwrap()
}

/// A proto added to the pool is documented without gateway changes, with every
/// JSON mapping rule the generator knows.
#[test]
fn a_new_proto_is_documented_without_code_changes() {
    let pool = compile(
        "acme/v1/shelf.proto",
        r#"syntax = "proto3";
package acme.v1;
import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

// Shelves of books.
service ShelfService {
  // Moves a book. Keeps its history.
  rpc MoveBook(MoveBookRequest) returns (Book) {
    option (google.api.http) = {
      post: "/v1/{book.name=libraries/*/books/*}:move"
      body: "*"
      additional_bindings { custom: {kind: "MOVE" path: "/v1/{book.name=books/**}"} }
      additional_bindings { get: "/v1/{book.name=archive/**}:move" }
    };
  }
  // Lists books.
  rpc ListBooks(ListBooksRequest) returns (ListBooksResponse) {
    option (google.api.http) = { get: "/v1/{parent=libraries/*}/books" response_body: "books" };
  }
  // Watches a shelf.
  rpc WatchShelf(ListBooksRequest) returns (stream Book) {
    option (google.api.http) = { get: "/v1/{parent=libraries/*}:watch" };
  }
}
// A book.
message Book {
  // The book's resource name.
  string name = 1;
  int64 pages = 2;
  uint64 isbn = 3;
  bytes cover = 4;
  google.protobuf.Timestamp create_time = 5 [(google.api.field_behavior) = OUTPUT_ONLY];
  google.protobuf.Duration read_time = 6;
  google.protobuf.Struct labels = 7;
  google.protobuf.Value extra = 8;
  google.protobuf.Int32Value rating = 9;
  google.protobuf.Any attachment = 10;
  map<string, int64> counts = 11;
  oneof origin {
    string author = 12;
    string publisher = 13;
  }
  Genre genre = 14;
  string title = 15 [(google.api.field_behavior) = REQUIRED];
  repeated Book sequels = 16;
}
enum Genre {
  GENRE_UNSPECIFIED = 0;
  // Made up.
  GENRE_FICTION = 1;
}
message MoveBookRequest {
  Book book = 1;
  string target = 2 [(google.api.field_behavior) = REQUIRED];
}
message ListBooksRequest {
  string parent = 1;
  int32 page_size = 2;
  repeated Genre genres = 3;
  Book example = 4;
  google.protobuf.FieldMask read_mask = 5;
  google.protobuf.BoolValue in_stock = 6;
}
message ListBooksResponse { repeated Book books = 1; }
"#,
    );
    let table = RouteTable::from_pool(&pool, &BackendMap::parse("acme.v1=http://acme:9").unwrap()).unwrap();
    let public: HashSet<String> = ["/acme.v1.ShelfService/ListBooks".to_owned()].into();

    let document = openapi::document(&pool, &table, &public);

    // The custom MOVE verb has no OpenAPI form; every other binding is there.
    assert_eq!(table.routes().len(), 5);
    assert_eq!(operations(&document).len(), 4);
    let tag = document["tags"].as_array().unwrap().iter().find(|t| t["name"] == "ShelfService").expect("a tag per service");
    assert_eq!(tag["description"], "Shelves of books.");

    let moved = operation(&document, "/v1/libraries/{library}/books/{book}:move", "post");
    assert_eq!(moved["operationId"], "ShelfService_MoveBook");
    assert_eq!(moved["summary"], "Moves a book.");
    assert!(moved["description"].as_str().unwrap().contains("acme.v1.ShelfService/MoveBook"));
    assert_eq!(parameter(moved, "library")["in"], "path");
    assert_eq!(moved["requestBody"]["content"]["application/json"]["schema"]["$ref"], schema_ref("acme.v1.MoveBookRequest"));
    assert_eq!(document["components"]["schemas"]["acme.v1.MoveBookRequest"]["required"], json!(["target"]));
    assert_eq!(moved["responses"]["200"]["content"]["application/json"]["schema"]["$ref"], schema_ref("acme.v1.Book"));
    let archived = operation(&document, "/v1/archive/{book.name}:move", "get");
    assert_eq!(archived["operationId"], "ShelfService_MoveBook2");
    assert!(parameter(archived, "book.name")["description"].as_str().unwrap().contains("May contain `/`"));

    let list = operation(&document, "/v1/libraries/{library}/books", "get");
    assert_eq!(list["security"], json!([]));
    assert_eq!(list["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"], schema_ref("acme.v1.Book"));
    assert_eq!(parameter(list, "pageSize")["schema"]["format"], "int32");
    assert_eq!(parameter(list, "genres")["schema"]["items"]["enum"], json!(["GENRE_UNSPECIFIED", "GENRE_FICTION"]));
    assert_eq!(parameter(list, "readMask")["schema"]["type"], "string");
    assert_eq!(parameter(list, "inStock")["schema"]["type"], "boolean");
    // Nested fields are dotted; message-valued WKTs and maps are body-only.
    assert_eq!(parameter(list, "example.pages")["schema"]["type"], "string");
    assert_eq!(parameter(list, "example.createTime")["schema"]["format"], "date-time");
    let names: Vec<&str> = list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for body_only in ["example.labels", "example.extra", "example.attachment", "example.counts", "example.sequels", "parent"] {
        assert!(!names.contains(&body_only), "{body_only} in {names:?}");
    }

    let watch = operation(&document, "/v1/libraries/{library}:watch", "get");
    assert!(watch["responses"]["200"]["content"]["application/x-ndjson"].is_object());

    let book = &document["components"]["schemas"]["acme.v1.Book"];
    let p = &book["properties"];
    assert_eq!(book["description"], "A book.");
    assert_eq!(p["name"]["description"], "The book's resource name.");
    assert_eq!((&p["pages"]["type"], &p["isbn"]["type"]), (&json!("string"), &json!("string")));
    assert_eq!(p["cover"]["contentEncoding"], "base64");
    assert_eq!((&p["createTime"]["format"], &p["createTime"]["readOnly"]), (&json!("date-time"), &json!(true)));
    assert_eq!(p["readTime"]["type"], "string");
    assert_eq!(p["labels"]["type"], "object");
    assert_eq!(p["extra"], json!({}), "Value is any JSON");
    assert_eq!(p["rating"]["type"], json!(["integer", "null"]));
    assert_eq!(p["attachment"]["required"], json!(["@type"]));
    assert_eq!(p["counts"]["additionalProperties"]["type"], "string");
    assert!(p["author"]["description"].as_str().unwrap().contains("`publisher`"), "{:#}", p["author"]);
    assert_eq!(p["genre"]["enum"], json!(["GENRE_UNSPECIFIED", "GENRE_FICTION"]));
    assert!(p["genre"]["description"].as_str().unwrap().contains("`GENRE_FICTION`: Made up."), "{:#}", p["genre"]);
    assert_eq!(p["sequels"]["items"]["$ref"], schema_ref("acme.v1.Book"));
    assert!(book.get("required").is_none(), "only request messages list REQUIRED fields");
}
