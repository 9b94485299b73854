//! Journey runs against real campaigns, profiles and SMTP: customers started
//! by EnterJourney and by profiles' events, each step taken once (the
//! message in the ledger, the points in the ledger, the tag in profiles),
//! waits held until their time, purchases ending runs, re-entry rules, and
//! the runs' history by journey and by customer.

use std::time::Duration;

use crm_proto::{
    crm::{
        campaigns::v1::{self as pb, journey_service_client::JourneyServiceClient, loyalty_service_client::LoyaltyServiceClient},
        profiles::v1::{self as profiles, transaction_service_client::TransactionServiceClient},
    },
    google::r#type::Money,
};
use sqlx::Connection;
use tonic::{Code, transport::Channel};

use crate::{
    helpers::{Person, TestApp, assert_error, email_template, spawn_app, violations},
    journeys::{exit, send, wait_days},
};

fn step(id: &str, kind: pb::journey_step::Kind, next: &str) -> pb::JourneyStep {
    pb::JourneyStep { id: id.into(), kind: Some(kind), next: next.into() }
}

fn grant(id: &str, points: i64, next: &str) -> pb::JourneyStep {
    let grant = pb::GrantPointsStep { points, expire_days: 365, reason: "Welcome gift".into() };
    step(id, pb::journey_step::Kind::GrantPoints(grant), next)
}

fn tag(id: &str, tag: &str, next: &str) -> pb::JourneyStep {
    let update = pb::UpdateCustomerStep { add_tags: vec![tag.into()], remove_tags: vec![] };
    step(id, pb::journey_step::Kind::UpdateCustomer(update), next)
}

fn branch_on_filter(id: &str, filter: &str, if_true: &str, if_false: &str) -> pb::JourneyStep {
    let branch = pb::BranchStep {
        condition: Some(pb::branch_step::Condition::Filter(filter.into())),
        if_true: if_true.into(),
        if_false: if_false.into(),
    };
    step(id, pb::journey_step::Kind::Branch(branch), "")
}

fn api_trigger() -> pb::JourneyTrigger {
    pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Api(true)) }
}

fn on(event: pb::JourneyEvent) -> pb::JourneyTrigger {
    let event = pb::JourneyEventTrigger { event: event as i32, segment: String::new() };
    pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Event(event)) }
}

struct Fixture {
    app: TestApp,
    client: JourneyServiceClient<Channel>,
    template: String,
}

impl Fixture {
    /// The app with an email provider and a welcome template.
    async fn start() -> Self {
        let app = spawn_app().await;
        app.email_provider().await;
        let template = email_template(pb::Purpose::Marketing, "Welcome", "Hello {{ customer.display_name }}", &[]);
        let template = app.clients.create_template(template).await.unwrap().name;
        let client = JourneyServiceClient::new(app.clients.channel.clone());
        Self { app, client, template }
    }

    fn marketer<T>(&self, message: T) -> tonic::Request<T> {
        self.app.clients.as_roles(message, &["marketer"])
    }

    /// Creates and publishes `journey`.
    async fn publish(&self, journey: pb::Journey) -> pb::Journey {
        let mut client = self.client.clone();
        let request = self.marketer(pb::CreateJourneyRequest { journey: Some(journey), request_id: String::new() });
        let draft = client.create_journey(request).await.unwrap().into_inner().journey.unwrap();
        let publish = self.marketer(pb::PublishJourneyRequest { name: draft.name, etag: String::new() });
        client.publish_journey(publish).await.unwrap().into_inner().journey.unwrap()
    }

    async fn customer(&self, name: &str, email: &str) -> String {
        self.app.clients.customer(Person { name, email, email_opt_in: true, ..Default::default() }).await
    }

    async fn enter(&self, journey: &str, customer: &str, request_id: &str) -> Result<pb::JourneyRun, tonic::Status> {
        let request = pb::EnterJourneyRequest { name: journey.into(), customer: customer.into(), request_id: request_id.into() };
        Ok(self.client.clone().enter_journey(self.app.clients.as_roles(request, &["service"])).await?.into_inner().run.unwrap())
    }

    async fn run(&self, name: &str) -> pb::JourneyRun {
        let request = self.marketer(pb::GetJourneyRunRequest { name: name.into() });
        self.client.clone().get_journey_run(request).await.unwrap().into_inner().run.unwrap()
    }

    /// Waits (at most 15 s) until run `name` is in `state`.
    async fn run_in(&self, name: &str, state: pb::JourneyRunState) -> pb::JourneyRun {
        for _ in 0..300 {
            let run = self.run(name).await;
            if run.state == state as i32 {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not reach {state:?}: {:?}", self.run(name).await);
    }

    async fn runs(&self, parent: &str, customer: &str) -> Vec<pb::JourneyRun> {
        let request =
            pb::ListJourneyRunsRequest { parent: parent.into(), customer: customer.into(), page_size: 0, page_token: String::new() };
        self.client.clone().list_journey_runs(self.marketer(request)).await.unwrap().into_inner().runs
    }

    /// Records a purchase of CNY `units` by `customer` in profiles.
    async fn buy(&self, customer: &str, external_id: &str, units: i64) {
        let purchase = profiles::Transaction {
            external_id: external_id.into(),
            kind: profiles::TransactionKind::Purchase as i32,
            amount: Some(Money { currency_code: "CNY".into(), units, nanos: 0 }),
            occur_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
            ..Default::default()
        };
        let request = profiles::CreateTransactionRequest { parent: customer.into(), transaction: Some(purchase) };
        TransactionServiceClient::new(self.app.profiles.as_ref().unwrap().channel.clone())
            .create_transaction(self.app.clients.as_roles(request, &["agent"]))
            .await
            .unwrap();
    }

    /// Moves every waiting run's wake-up to now, as if its wait had passed.
    async fn let_waits_pass(&self) {
        let mut owner = sqlx::PgConnection::connect(&self.app.db.owner_url).await.unwrap();
        // FORCE ROW LEVEL SECURITY binds the owner too: act as the tenant.
        sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(self.app.tenant.to_string()).execute(&mut owner).await.unwrap();
        sqlx::query("UPDATE journey_runs SET due_time = now() WHERE state = 'WAITING'").execute(&mut owner).await.unwrap();
    }
}

fn outcomes(run: &pb::JourneyRun) -> Vec<(String, pb::JourneyStepOutcome)> {
    run.steps.iter().map(|s| (s.step.clone(), pb::JourneyStepOutcome::try_from(s.outcome).unwrap())).collect()
}

#[tokio::test]
async fn a_customer_entered_by_a_call_takes_each_step_once() {
    let f = Fixture::start().await;
    let journey = f
        .publish(pb::Journey {
            display_name: "Welcome".into(),
            trigger: Some(api_trigger()),
            steps: vec![
                send("hello", &f.template, "gift"),
                grant("gift", 100, "mark"),
                tag("mark", "welcomed", "is-welcomed"),
                branch_on_filter("is-welcomed", "tags = \"welcomed\"", "done", "hello-again"),
                send("hello-again", &f.template, ""),
                exit("done"),
            ],
            ..Default::default()
        })
        .await;
    let customer = f.customer("Ada", "ada@example.com").await;

    // Entered by a call; a retry of the same request is the same run.
    let run = f.enter(&journey.name, &customer, "enter-ada").await.unwrap();
    assert_eq!((run.customer.as_str(), run.version, run.trigger.as_str()), (customer.as_str(), 1, "EnterJourney"));
    assert_eq!(f.enter(&journey.name, &customer, "enter-ada").await.unwrap().name, run.name);

    let done = f.run_in(&run.name, pb::JourneyRunState::Completed).await;
    use pb::JourneyStepOutcome::*;
    assert_eq!(
        outcomes(&done),
        [
            ("hello".to_owned(), Sent),
            ("gift".to_owned(), PointsGranted),
            ("mark".to_owned(), Updated),
            ("is-welcomed".to_owned(), BranchTrue),
            ("done".to_owned(), Exited)
        ]
    );
    assert_eq!(done.end_reason, pb::JourneyRunEndReason::ExitStep as i32);
    assert!(done.end_time.is_some() && done.current_step.is_empty());

    // The message went through the ledger, once.
    let delivery = f.app.settled(&done.steps[0].delivery).await;
    assert_eq!(delivery.status, pb::DeliveryStatus::Sent as i32, "{delivery:?}");
    let mails = f.app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    // The points are in the customer's ledger, once.
    let account = LoyaltyServiceClient::new(f.app.clients.channel.clone())
        .get_points_account(f.marketer(pb::GetPointsAccountRequest { name: format!("{customer}/pointsAccount") }))
        .await
        .unwrap()
        .into_inner()
        .points_account
        .unwrap();
    assert_eq!(account.balance, 100);
    // The tag is on the customer in profiles.
    let stored = f.app.clients.customers.clone().get_customer(f.app.admin(profiles::GetCustomerRequest { name: customer.clone() })).await;
    assert!(stored.unwrap().into_inner().customer.unwrap().tags.contains(&"welcomed".to_owned()));

    // NEVER re-enters: a new request for the same customer is refused, naming the run.
    let again = assert_error(f.enter(&journey.name, &customer, "").await, Code::AlreadyExists, "ALREADY_ENTERED");
    assert!(again.message().contains("re-entry is NEVER"), "{again:?}");

    // The run shows in the journey's runs and in the customer's.
    assert_eq!(f.runs(&journey.name, "").await.iter().map(|r| r.name.clone()).collect::<Vec<_>>(), std::slice::from_ref(&run.name));
    assert_eq!(f.runs("journeys/-", &customer).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.app.smtp.messages().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn a_wait_holds_the_run_until_its_time_and_a_purchase_ends_it() {
    let f = Fixture::start().await;
    let journey = f
        .publish(pb::Journey {
            display_name: "Nudge".into(),
            trigger: Some(api_trigger()),
            steps: vec![send("first", &f.template, "pause"), wait_days("pause", 3, "second"), send("second", &f.template, "")],
            reentry: pb::JourneyReentry::Always as i32,
            exit_on_purchase: true,
            ..Default::default()
        })
        .await;
    let ada = f.customer("Ada", "ada@example.com").await;
    let bob = f.customer("Bob", "bob@example.com").await;
    let ada_run = f.enter(&journey.name, &ada, "").await.unwrap();
    let bob_run = f.enter(&journey.name, &bob, "").await.unwrap();

    // Both send and wait three days.
    let waiting = f.run_in(&ada_run.name, pb::JourneyRunState::Waiting).await;
    assert_eq!(waiting.current_step, "pause");
    let wake = waiting.wake_time.unwrap().seconds - waiting.steps[1].time.unwrap().seconds;
    assert!((3 * 86_400 - 5..=3 * 86_400 + 5).contains(&wake), "{wake}");
    f.run_in(&bob_run.name, pb::JourneyRunState::Waiting).await;

    // Bob buys: his run ends on its goal; Ada's goes on when the wait is over.
    f.buy(&bob, "order-1", 99).await;
    let ended = f.run_in(&bob_run.name, pb::JourneyRunState::Exited).await;
    assert_eq!(ended.end_reason, pb::JourneyRunEndReason::GoalReached as i32);

    f.let_waits_pass().await;
    let done = f.run_in(&ada_run.name, pb::JourneyRunState::Completed).await;
    use pb::JourneyStepOutcome::*;
    assert_eq!(outcomes(&done), [("first".to_owned(), Sent), ("pause".to_owned(), Waited), ("second".to_owned(), Sent)]);
    f.app.smtp.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.app.smtp.messages().len(), 3, "Ada twice, Bob once");

    // ALWAYS re-enters: a second call starts a second run.
    let second = f.enter(&journey.name, &ada, "").await.unwrap();
    assert_ne!(second.name, ada_run.name);
    assert_eq!(f.runs("journeys/-", &ada).await.len(), 2);

    // A run is cancelled once; cancelling an ended run changes nothing.
    let cancel = |name: &str| f.marketer(pb::CancelJourneyRunRequest { name: name.into() });
    let cancelled = f.client.clone().cancel_journey_run(cancel(&second.name)).await.unwrap().into_inner().run.unwrap();
    assert_eq!(cancelled.state, pb::JourneyRunState::Exited as i32);
    let ended_before = f.client.clone().cancel_journey_run(cancel(&done.name)).await.unwrap().into_inner().run.unwrap();
    assert_eq!(ended_before.end_reason, pb::JourneyRunEndReason::Finished as i32, "still FINISHED");
}

#[tokio::test]
async fn a_customer_created_in_profiles_starts_the_welcome_journey_once() {
    let f = Fixture::start().await;
    // Created before the journey is published: not a new customer to it.
    let earlier = f.customer("Early", "early@example.com").await;
    let journey = f
        .publish(pb::Journey {
            display_name: "Welcome".into(),
            trigger: Some(on(pb::JourneyEvent::CustomerCreated)),
            steps: vec![send("hello", &f.template, "")],
            ..Default::default()
        })
        .await;
    let ada = f.customer("Ada", "ada@example.com").await;

    let mut runs = Vec::new();
    for _ in 0..200 {
        runs = f.runs(&journey.name, "").await;
        if runs.first().is_some_and(|r| r.state == pb::JourneyRunState::Completed as i32) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].customer, ada);
    assert!(runs[0].trigger.starts_with("profiles event "), "{runs:?}");
    assert_eq!(f.app.smtp.wait_for(1, Duration::from_secs(10)).await[0].rcpt_tos, ["ada@example.com"]);
    assert!(f.runs("journeys/-", &earlier).await.is_empty());
}

#[tokio::test]
async fn bad_entries_and_reads_are_refused_clearly() {
    let f = Fixture::start().await;
    let customer = f.customer("Ada", "ada@example.com").await;
    let mut client = f.client.clone();
    let request = f.marketer(pb::CreateJourneyRequest {
        journey: Some(pb::Journey {
            display_name: "Draft".into(),
            trigger: Some(api_trigger()),
            steps: vec![send("hello", &f.template, "")],
            ..Default::default()
        }),
        request_id: String::new(),
    });
    let draft = client.create_journey(request).await.unwrap().into_inner().journey.unwrap();

    // A draft takes no one; an unknown customer is the caller's mistake.
    assert_error(f.enter(&draft.name, &customer, "").await, Code::FailedPrecondition, "JOURNEY_NOT_ACTIVE");
    let nobody = format!("customers/{}", uuid::Uuid::now_v7());
    assert_error(f.enter(&draft.name, &nobody, "").await, Code::InvalidArgument, "UNKNOWN_CUSTOMER");
    // Re-entry after 30 days: a second start within them is refused, naming why.
    let monthly = f
        .publish(pb::Journey {
            display_name: "Monthly".into(),
            trigger: Some(api_trigger()),
            steps: vec![send("hello", &f.template, "")],
            reentry: pb::JourneyReentry::AfterDays as i32,
            reentry_days: 30,
            ..Default::default()
        })
        .await;
    f.enter(&monthly.name, &customer, "").await.unwrap();
    assert_error(f.enter(&monthly.name, &customer, "").await, Code::FailedPrecondition, "REENTRY_TOO_SOON");
    // Entering needs journeys.enter, which an analyst lacks.
    let by_analyst = f.app.clients.as_roles(
        pb::EnterJourneyRequest { name: draft.name.clone(), customer: customer.clone(), request_id: String::new() },
        &["analyst"],
    );
    assert_error(client.enter_journey(by_analyst).await, Code::PermissionDenied, "PERMISSION_DENIED");
    // Across journeys, a customer is required.
    let all = f.marketer(pb::ListJourneyRunsRequest { parent: "journeys/-".into(), ..Default::default() });
    assert_error(client.list_journey_runs(all).await, Code::InvalidArgument, "CUSTOMER_REQUIRED");
    let missing = format!("{}/runs/{}", draft.name, uuid::Uuid::now_v7());
    assert_error(client.get_journey_run(f.marketer(pb::GetJourneyRunRequest { name: missing })).await, Code::NotFound, "NOT_FOUND");

    // A grant step is checked with the rest of the definition.
    let bad = f.marketer(pb::CreateJourneyRequest {
        journey: Some(pb::Journey {
            display_name: "Bad".into(),
            trigger: Some(api_trigger()),
            steps: vec![grant("gift", 0, "")],
            ..Default::default()
        }),
        request_id: String::new(),
    });
    let refused = assert_error(client.create_journey(bad).await, Code::InvalidArgument, "INVALID_POINTS");
    assert_eq!(violations(&refused), [("journey.steps[0]".to_owned(), "INVALID_POINTS".to_owned())]);
}

/// Creates a customer born on `month`/`day` (0: no birthday), opted in to email.
async fn born(f: &Fixture, name: &str, email: &str, month: u32, day: u32) -> String {
    let customer = profiles::Customer {
        display_name: name.into(),
        emails: vec![crm_proto::crm::common::v1::EmailAddress { address: email.into(), label: String::new(), primary: true }],
        birthday: (month > 0).then_some(crm_proto::google::r#type::Date { year: 1990, month: month as i32, day: day as i32 }),
        consent: Some(profiles::Consent {
            email: Some(profiles::ChannelConsent { state: profiles::ConsentState::OptedIn as i32, update_time: None }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let request = f.app.admin(profiles::CreateCustomerRequest { customer: Some(customer), request_id: String::new() });
    f.app.clients.customers.clone().create_customer(request).await.unwrap().into_inner().customer.unwrap().name
}

/// Waits (at most 15 s) until journey `name` has `count` runs.
async fn runs_of(f: &Fixture, name: &str, count: usize) -> Vec<pb::JourneyRun> {
    for _ in 0..300 {
        let runs = f.runs(name, "").await;
        if runs.len() >= count {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not reach {count} runs: {:?}", f.runs(name, "").await);
}

#[tokio::test]
async fn birthdays_and_holidays_greet_each_customer_once_at_their_local_time() {
    use chrono::Datelike;
    // "Today" must stay today while the test runs: this close to midnight (UTC), wait for the new day.
    let now = chrono::Utc::now();
    let midnight_utc = (now.date_naive() + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).unwrap().and_utc();
    if midnight_utc - now < chrono::Duration::seconds(90) {
        tokio::time::sleep((midnight_utc - now + chrono::Duration::seconds(2)).to_std().unwrap()).await;
    }
    let f = Fixture::start().await;
    let (today, tomorrow) = (chrono::Utc::now().date_naive(), chrono::Utc::now().date_naive() + chrono::Duration::days(1));
    let today_born = born(&f, "Today", "today@example.com", today.month(), today.day()).await;
    let tomorrow_born = born(&f, "Tomorrow", "tomorrow@example.com", tomorrow.month(), tomorrow.day()).await;
    born(&f, "Nobody knows", "unknown@example.com", 0, 0).await;
    let midnight = crm_proto::google::r#type::TimeOfDay::default();

    // A birthday journey at 00:00 (the tenant's zone, UTC): today's customer now, tomorrow's tomorrow.
    let birthday = f
        .publish(pb::Journey {
            display_name: "Happy birthday".into(),
            trigger: Some(pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Birthday(midnight)) }),
            steps: vec![send("card", &f.template, "")],
            ..Default::default()
        })
        .await;
    let runs = runs_of(&f, &birthday.name, 2).await;
    let of = |customer: &str| runs.iter().find(|r| r.customer == customer).unwrap().clone();
    assert_eq!(of(&today_born).trigger, format!("birthdays/{today}"));
    assert_eq!(f.run_in(&of(&today_born).name, pb::JourneyRunState::Completed).await.steps.len(), 1);
    let waiting = of(&tomorrow_born);
    assert_eq!(waiting.state, pb::JourneyRunState::Active as i32, "not yet taken");
    let due = chrono::DateTime::from_timestamp(waiting.wake_time.unwrap().seconds, 0).unwrap();
    assert_eq!(due, tomorrow.and_hms_opt(0, 0, 0).unwrap().and_utc(), "greeted at 00:00 on the day");

    // A holiday of the tenant's calendar today, at 00:00: everyone, once.
    let rule = pb::HolidayRule {
        kind: Some(pb::holiday_rule::Kind::Gregorian(pb::MonthDay { month: today.month() as i32, day: today.day() as i32 })),
    };
    let holiday = pb::Holiday { display_name: "Founders' day".into(), rule: Some(rule), ..Default::default() };
    crm_proto::crm::campaigns::v1::holiday_service_client::HolidayServiceClient::new(f.app.clients.channel.clone())
        .create_holiday(f.marketer(pb::CreateHolidayRequest { holiday_id: "founders-day".into(), holiday: Some(holiday) }))
        .await
        .unwrap();
    let trigger = pb::JourneyHolidayTrigger { holiday: "holidays/founders-day".into(), time: Some(midnight) };
    let greeting = f
        .publish(pb::Journey {
            display_name: "Founders' day".into(),
            trigger: Some(pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Holiday(trigger)) }),
            steps: vec![send("card", &f.template, "")],
            ..Default::default()
        })
        .await;
    let greeted = runs_of(&f, &greeting.name, 3).await;
    assert!(greeted.iter().all(|r| r.trigger == format!("holidays/founders-day/{today}")), "{greeted:?}");

    // Later rounds start nobody twice.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(f.runs(&birthday.name, "").await.len(), 2);
    assert_eq!(f.runs(&greeting.name, "").await.len(), 3);
    assert_eq!(f.app.smtp.wait_for(4, Duration::from_secs(10)).await.len(), 4, "today's birthday and three holiday cards");
}

#[tokio::test]
async fn a_purchase_and_a_custom_goal_are_attributed_to_the_journeys_message() {
    use crm_proto::crm::campaigns::v1::attribution_service_client::AttributionServiceClient;
    let f = Fixture::start().await;
    let journey = f
        .publish(pb::Journey {
            display_name: "Cross-sell".into(),
            trigger: Some(api_trigger()),
            steps: vec![send("offer", &f.template, "")],
            ..Default::default()
        })
        .await;
    let ada = f.customer("Ada", "ada@example.com").await;
    let bob = f.customer("Bob", "bob@example.com").await;
    let run = f.enter(&journey.name, &ada, "").await.unwrap();
    let done = f.run_in(&run.name, pb::JourneyRunState::Completed).await;
    let delivery = f.app.settled(&done.steps[0].delivery).await;
    assert_eq!(delivery.status, pb::DeliveryStatus::Sent as i32);

    // Ada buys (in profiles): the purchase is hers and the offer's.
    f.buy(&ada, "order-7", 99).await;
    // A custom goal through the API, once per request id; Bob's, without a message, is nobody's.
    let mut attribution = AttributionServiceClient::new(f.app.clients.channel.clone());
    let goal = |customer: &str, request_id: &str| {
        let conversion = pb::Conversion { customer: customer.into(), goal: "app-installed".into(), ..Default::default() };
        f.app.clients.as_roles(pb::RecordConversionRequest { conversion: Some(conversion), request_id: request_id.into() }, &["service"])
    };
    let installed = attribution.record_conversion(goal(&ada, "install-ada")).await.unwrap().into_inner().conversion.unwrap();
    assert_eq!((installed.delivery.as_str(), installed.journey.as_str()), (delivery.name.as_str(), journey.name.as_str()));
    let again = attribution.record_conversion(goal(&ada, "install-ada")).await.unwrap().into_inner().conversion.unwrap();
    assert_eq!(again.name, installed.name);
    let nobodys = attribution.record_conversion(goal(&bob, "install-bob")).await.unwrap().into_inner().conversion.unwrap();
    assert!(nobodys.delivery.is_empty() && nobodys.journey.is_empty(), "{nobodys:?}");

    // The journey's report: one message, two conversions, CNY 99.
    let report_name = format!("{}/attribution", journey.name);
    let mut report = pb::Attribution::default();
    for _ in 0..200 {
        let request = f.marketer(pb::GetAttributionRequest { name: report_name.clone() });
        report = attribution.get_attribution(request).await.unwrap().into_inner().attribution.unwrap();
        if report.conversions == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((report.messages_sent, report.conversions, report.window_days), (1, 2, 7), "{report:?}");
    assert_eq!(report.revenue, [Money { currency_code: "CNY".into(), units: 99, nanos: 0 }]);
    assert_eq!(report.conversions_by_goal.get("PURCHASE"), Some(&1));
    assert_eq!(report.conversions_by_goal.get("app-installed"), Some(&1));

    // Bad input: a goal name that is not a slug, no request id; an unknown campaign's report.
    let bad = pb::Conversion { customer: ada.clone(), goal: "App Installed".into(), ..Default::default() };
    let request = f.app.clients.as_roles(pb::RecordConversionRequest { conversion: Some(bad), request_id: "x".into() }, &["service"]);
    assert_error(attribution.record_conversion(request).await, Code::InvalidArgument, "INVALID_GOAL");
    assert_error(attribution.record_conversion(goal(&ada, "")).await, Code::InvalidArgument, "REQUIRED");
    let unknown = f.marketer(pb::GetAttributionRequest { name: format!("campaigns/{}/attribution", uuid::Uuid::now_v7()) });
    assert_error(attribution.get_attribution(unknown).await, Code::NotFound, "NOT_FOUND");
    // A notice may not borrow a journey step's request id (its message would be the step's).
    let borrowed = format!("{}/steps/1", run.name);
    assert_error(f.app.send_notice(&f.template, &ada, &[], &borrowed).await, Code::InvalidArgument, "RESERVED_REQUEST_ID");
}

#[tokio::test]
async fn a_goal_wait_goes_on_when_the_customer_buys_and_a_branch_asks_for_a_goal_after_the_timeout() {
    use crm_proto::crm::campaigns::v1::attribution_service_client::AttributionServiceClient;
    let f = Fixture::start().await;
    let await_purchase = pb::GoalWaitStep {
        goal: "PURCHASE".into(),
        timeout: Some(prost_types::Duration { seconds: 86_400, nanos: 0 }),
        on_timeout: "installed".into(),
    };
    let installed = pb::BranchStep {
        condition: Some(pb::branch_step::Condition::GoalReached("app-installed".into())),
        if_true: "done".into(),
        if_false: "nudge".into(),
    };
    let journey = f
        .publish(pb::Journey {
            display_name: "Offer".into(),
            trigger: Some(api_trigger()),
            steps: vec![
                send("offer", &f.template, "await-purchase"),
                step("await-purchase", pb::journey_step::Kind::WaitForGoal(await_purchase), "thanks"),
                grant("thanks", 10, ""),
                step("installed", pb::journey_step::Kind::Branch(installed), ""),
                send("nudge", &f.template, ""),
                exit("done"),
            ],
            reentry: pb::JourneyReentry::Always as i32,
            ..Default::default()
        })
        .await;
    let ada = f.customer("Ada", "ada@example.com").await;
    let bob = f.customer("Bob", "bob@example.com").await;
    let ada_run = f.enter(&journey.name, &ada, "").await.unwrap();
    let bob_run = f.enter(&journey.name, &bob, "").await.unwrap();
    f.run_in(&ada_run.name, pb::JourneyRunState::Waiting).await;
    f.run_in(&bob_run.name, pb::JourneyRunState::Waiting).await;

    // Ada buys: her run goes on at once, to the thanks.
    f.buy(&ada, "order-9", 10).await;
    let thanked = f.run_in(&ada_run.name, pb::JourneyRunState::Completed).await;
    use pb::JourneyStepOutcome::*;
    assert_eq!(
        outcomes(&thanked),
        [("offer".to_owned(), Sent), ("await-purchase".to_owned(), AwaitingGoal), ("thanks".to_owned(), PointsGranted)]
    );

    // Bob installs the app but does not buy: after the timeout the branch finds his goal.
    let conversion = pb::Conversion { customer: bob.clone(), goal: "app-installed".into(), ..Default::default() };
    let request =
        f.app.clients.as_roles(pb::RecordConversionRequest { conversion: Some(conversion), request_id: "bob-app".into() }, &["service"]);
    AttributionServiceClient::new(f.app.clients.channel.clone()).record_conversion(request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.run(&bob_run.name).await.state, pb::JourneyRunState::Waiting as i32, "another goal does not end the wait");
    f.let_waits_pass().await;
    let timed_out = f.run_in(&bob_run.name, pb::JourneyRunState::Completed).await;
    assert_eq!(
        outcomes(&timed_out),
        [
            ("offer".to_owned(), Sent),
            ("await-purchase".to_owned(), AwaitingGoal),
            ("installed".to_owned(), BranchTrue),
            ("done".to_owned(), Exited)
        ]
    );
}

#[tokio::test]
async fn an_ab_test_splits_runs_holds_some_out_and_picks_a_significant_winner() {
    use crm_proto::crm::campaigns::v1::attribution_service_client::AttributionServiceClient;
    let f = Fixture::start().await;
    let other = email_template(pb::Purpose::Marketing, "A better offer", "Hi {{ customer.display_name }}", &[]);
    let other = f.app.clients.create_template(other).await.unwrap().name;
    let ab_test = pb::AbTest {
        variants: vec![pb::AbVariant { template: other, variables: Default::default() }],
        holdout_percent: 20,
        metric: pb::AbTestMetric::Conversion as i32,
        min_sample: 10,
        decide_within_days: 7,
    };
    let offer =
        pb::SendStep { template: f.template.clone(), variables: Default::default(), ab_test: Some(ab_test), questionnaire: String::new() };
    let journey = f
        .publish(pb::Journey {
            display_name: "Tested offer".into(),
            trigger: Some(api_trigger()),
            steps: vec![step("offer", pb::journey_step::Kind::Send(offer), "")],
            ..Default::default()
        })
        .await;

    // 70 customers go through: about 20 % held out, the rest split between a and b.
    let mut groups: std::collections::BTreeMap<String, Vec<(String, pb::JourneyRunStep)>> = Default::default();
    for i in 0..70 {
        let customer = f.customer(&format!("C{i}"), &format!("c{i}@example.com")).await;
        let run = f.enter(&journey.name, &customer, "").await.unwrap();
        let done = f.run_in(&run.name, pb::JourneyRunState::Completed).await;
        groups.entry(done.steps[0].variant.clone()).or_default().push((customer, done.steps[0].clone()));
    }
    assert_eq!(groups.keys().cloned().collect::<Vec<_>>(), ["a", "b", "holdout"], "{groups:?}");
    assert!(groups["holdout"].iter().all(|(_, s)| s.outcome == pb::JourneyStepOutcome::HeldOut as i32 && s.delivery.is_empty()));
    assert!(groups["a"].len() >= 10 && groups["b"].len() >= 10, "{:?}", groups.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>());
    for (_, s) in groups["a"].iter().chain(&groups["b"]) {
        assert_eq!(f.app.settled(&s.delivery).await.status, pb::DeliveryStatus::Sent as i32);
    }

    // Everyone who got b converts, nobody who got a; two of the holdout do.
    let mut attribution = AttributionServiceClient::new(f.app.clients.channel.clone());
    let converters = groups["b"].iter().chain(groups["holdout"].iter().take(2));
    for (i, (customer, _)) in converters.enumerate() {
        let conversion = pb::Conversion { customer: customer.clone(), goal: "signed-up".into(), ..Default::default() };
        let request = pb::RecordConversionRequest { conversion: Some(conversion), request_id: format!("signup-{i}") };
        attribution.record_conversion(f.app.clients.as_roles(request, &["service"])).await.unwrap();
    }

    // The decision job picks b; the report shows each group and b's lift over the holdout.
    let name = format!("{}/attribution", journey.name);
    let mut test = pb::AbTestResult::default();
    for _ in 0..200 {
        let report = attribution.get_attribution(f.marketer(pb::GetAttributionRequest { name: name.clone() })).await.unwrap();
        test = report.into_inner().attribution.unwrap().ab_tests.remove(0);
        if !test.winner.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((test.winner.as_str(), test.decision.as_str()), ("b", "SIGNIFICANT"), "{test:?}");
    let b = test.groups.iter().find(|g| g.variant == "b").unwrap();
    assert_eq!(b.converted, b.runs);
    assert!(b.lift > 1.0, "{test:?}");

    // From now on everyone outside the holdout gets b.
    for i in 0..10 {
        let customer = f.customer(&format!("Late{i}"), &format!("late{i}@example.com")).await;
        let run = f.enter(&journey.name, &customer, "").await.unwrap();
        let variant = f.run_in(&run.name, pb::JourneyRunState::Completed).await.steps[0].variant.clone();
        assert!(variant == "b" || variant == "holdout", "{variant}");
    }
}
