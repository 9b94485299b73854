//! proto ⇄ domain conversions: requests into validated domain values, rows
//! and domain values into responses and event payloads. Conversions take
//! what they need (`pii`), never read the clock or the database.
//!
//! # Layout
//! Channels, templates, deliveries, campaigns and the contact policy here;
//! - `providers`: provider settings in and out (credentials never out);
//! - `devices`: push devices in and out;
//! - `holidays`: holiday rules in, holidays with their dates out;
//! - `journeys`: journey definitions in (every malformed field named), journeys out;
//! - `campaign_tests`: a campaign's A/B/n test in and out;
//! - `loyalty`: points accounts and entries out.

pub mod attribution;
pub mod campaign_tests;
pub mod coupons;
pub mod devices;
pub mod holidays;
pub mod journeys;
pub mod loyalty;
pub mod providers;
pub mod questionnaires;

use crm_kit::{Error, FieldViolation, etag, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use crate::{
    domain::{
        campaign::State as CampaignState,
        channel::{Channel, Purpose},
        delivery::Status,
        policy::SkipReason,
        sms,
        template::{Content, Problem, Rendered, TemplateDraft},
    },
    resources::{CAMPAIGN, CUSTOMER, DELIVERY, PROVIDER, QUESTIONNAIRE, TEMPLATE},
    store::{
        campaigns::{CampaignFields, CampaignRow},
        contact_policy::{ContactPolicyRow, StoredCap},
        deliveries::DeliveryRow,
        templates::TemplateRow,
    },
};

/// A display name of 1-`max` characters after trimming, or INVALID_ARGUMENT `INVALID_DISPLAY_NAME` on `field`.
pub fn display_name(name: &str, field: &str, max: usize) -> Result<String, Error> {
    let name = name.trim();
    match (1..=max).contains(&name.chars().count()) {
        true => Ok(name.to_owned()),
        false => Err(Error::invalid(field, "INVALID_DISPLAY_NAME", format!("1-{max} characters"))),
    }
}

/// The channel of a request, or INVALID_ARGUMENT on `field`.
pub fn channel_from(value: i32, field: &str) -> Result<Channel, Error> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        Ok(pb::Channel::Sms) => Ok(Channel::Sms),
        Ok(pb::Channel::Push) => Ok(Channel::Push),
        _ => Err(Error::invalid(field, "INVALID_CHANNEL", "one of CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH")),
    }
}

/// The proto value of `channel`.
pub fn channel_to(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Email => pb::Channel::Email,
        Channel::Sms => pb::Channel::Sms,
        Channel::Push => pb::Channel::Push,
    }
}

fn purpose_from(value: i32, field: &str) -> Result<Purpose, Error> {
    match pb::Purpose::try_from(value) {
        Ok(pb::Purpose::Marketing) => Ok(Purpose::Marketing),
        Ok(pb::Purpose::Transactional) => Ok(Purpose::Transactional),
        _ => Err(Error::invalid(field, "INVALID_PURPOSE", "one of PURPOSE_MARKETING, PURPOSE_TRANSACTIONAL")),
    }
}

fn purpose_to(purpose: Purpose) -> pb::Purpose {
    match purpose {
        Purpose::Marketing => pb::Purpose::Marketing,
        Purpose::Transactional => pb::Purpose::Transactional,
    }
}

/// A template request as a draft; `channel` is the stored one on update.
/// Field checks beyond the enums happen in `domain::template::check`.
pub fn template_draft(t: &pb::Template, channel: Option<Channel>) -> Result<TemplateDraft, Error> {
    let channel = match channel {
        Some(c) => c,
        None => channel_from(t.channel, "template.channel")?,
    };
    Ok(TemplateDraft {
        display_name: t.display_name.trim().to_owned(),
        channel,
        purpose: purpose_from(t.purpose, "template.purpose")?,
        contents: t
            .contents
            .iter()
            .map(|c| Content {
                locale: c.locale.trim().to_owned(),
                subject: c.subject.clone(),
                body: c.body.clone(),
                html_body: c.html_body.clone(),
                data: c.data.clone(),
            })
            .collect(),
        default_locale: t.default_locale.trim().to_owned(),
        locked_variables: t.locked_variables.iter().map(|v| v.trim().to_owned()).collect(),
    })
}

/// A stored template as the API shows it.
pub fn template_to(row: &TemplateRow) -> pb::Template {
    pb::Template {
        name: TEMPLATE.name(row.id),
        display_name: row.display_name.clone(),
        channel: channel_to(row.channel) as i32,
        purpose: purpose_to(row.purpose) as i32,
        contents: row
            .contents
            .0
            .iter()
            .map(|c| pb::TemplateContent {
                locale: c.locale.clone(),
                subject: c.subject.clone(),
                body: c.body.clone(),
                html_body: c.html_body.clone(),
                data: c.data.clone(),
            })
            .collect(),
        default_locale: row.default_locale.clone(),
        locked_variables: row.locked_variables.clone(),
        variables: row.variables.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// A preview as the API shows it.
pub fn preview_to(channel: Channel, rendered: Rendered, problems: Vec<Problem>) -> pb::RenderPreviewResponse {
    let sms = (channel == Channel::Sms).then(|| {
        let length = sms::measure(&rendered.body);
        pb::SmsLength {
            encoding: match length.encoding {
                sms::Encoding::Gsm7 => pb::SmsEncoding::Gsm7,
                sms::Encoding::Ucs2 => pb::SmsEncoding::Ucs2,
            } as i32,
            units: i32::try_from(length.units).unwrap_or(i32::MAX),
            segments: i32::try_from(length.segments).unwrap_or(i32::MAX),
        }
    });
    pb::RenderPreviewResponse {
        locale: rendered.locale,
        subject: rendered.subject,
        body: rendered.body,
        html_body: rendered.html_body,
        data: rendered.data,
        sms,
        problems: problems
            .into_iter()
            .map(|p| pb::RenderProblem { field: p.field, reason: p.reason.to_owned(), description: p.description })
            .collect(),
    }
}

/// Render problems that stop a send, as INVALID_ARGUMENT violations.
pub fn problems_to_violations(problems: Vec<Problem>) -> Error {
    Error::InvalidArgument { violations: problems.into_iter().map(|p| FieldViolation::new(p.field, p.reason, p.description)).collect() }
}

fn status_to(status: Status) -> pb::DeliveryStatus {
    match status {
        Status::Queued => pb::DeliveryStatus::Queued,
        Status::Submitting => pb::DeliveryStatus::Submitting,
        Status::Sent => pb::DeliveryStatus::Sent,
        Status::Failed => pb::DeliveryStatus::Failed,
        Status::Skipped => pb::DeliveryStatus::Skipped,
        Status::Cancelled => pb::DeliveryStatus::Cancelled,
    }
}

/// The proto number of a stored status (for event payloads built before a change).
pub fn status_number(status: Status) -> i32 {
    status_to(status) as i32
}

/// The proto value of a stored skip reason.
pub fn skip_reason_to(stored: &str) -> pb::SkipReason {
    [
        SkipReason::NoAddress,
        SkipReason::NoConsent,
        SkipReason::DoNotContact,
        SkipReason::CustomerDeleted,
        SkipReason::FrequencyCap,
        SkipReason::OpenComplaint,
        SkipReason::Suppressed,
        SkipReason::CustomerDisabled,
    ]
    .into_iter()
    .find(|r| r.as_str() == stored)
    .map_or(pb::SkipReason::Unspecified, |r| match r {
        SkipReason::NoAddress => pb::SkipReason::NoAddress,
        SkipReason::NoConsent => pb::SkipReason::NoConsent,
        SkipReason::DoNotContact => pb::SkipReason::DoNotContact,
        SkipReason::CustomerDeleted => pb::SkipReason::CustomerDeleted,
        SkipReason::FrequencyCap => pb::SkipReason::FrequencyCap,
        SkipReason::OpenComplaint => pb::SkipReason::OpenComplaint,
        SkipReason::Suppressed => pb::SkipReason::Suppressed,
        SkipReason::CustomerDisabled => pb::SkipReason::CustomerDisabled,
    })
}

/// How much of a delivery a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Everything, unmasked (the `pii` permission).
    Full,
    /// Address and rendered text masked.
    Masked,
    /// No rendered content (event payloads).
    WithoutContent,
}

/// A delivery as the API (or an event) shows it.
pub fn delivery_to(row: &DeliveryRow, view: View) -> pb::Delivery {
    let full = pb::Delivery {
        name: DELIVERY.name(row.id),
        kind: match row.kind.as_str() {
            "NOTICE" => pb::DeliveryKind::Notice,
            "CAMPAIGN" => pb::DeliveryKind::Campaign,
            _ => pb::DeliveryKind::Unspecified,
        } as i32,
        template: TEMPLATE.name(row.template_id),
        customer: CUSTOMER.name(row.customer_id),
        channel: channel_to(row.channel) as i32,
        purpose: purpose_to(row.purpose) as i32,
        recipient: row.recipient.clone(),
        status: status_to(row.status) as i32,
        skip_reason: skip_reason_to(&row.skip_reason) as i32,
        locale: row.locale.clone(),
        subject: row.subject.clone(),
        body: row.body.clone(),
        html_body: row.html_body.clone(),
        attempts: row.attempts,
        provider: row.provider_id.map(|p| PROVIDER.name(p)).unwrap_or_default(),
        provider_message_id: row.provider_message_id.clone(),
        error: row.error.clone(),
        request_id: row.request_id.clone(),
        campaign: row.campaign_id.map(|c| CAMPAIGN.name(c)).unwrap_or_default(),
        ab_variant: row.variant.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        send_time: row.send_time.map(to_timestamp),
        next_attempt_time: row.next_attempt_time.map(to_timestamp),
        receipt_status: match row.receipt_status.as_str() {
            "DELIVERED" => pb::ReceiptStatus::Delivered,
            "UNDELIVERED" => pb::ReceiptStatus::Undelivered,
            _ => pb::ReceiptStatus::Unspecified,
        } as i32,
        receipt_time: row.receipt_time.map(to_timestamp),
        receipt_error: row.receipt_error.clone(),
        open_time: row.open_time.map(to_timestamp),
        click_time: row.click_time.map(to_timestamp),
    };
    match view {
        View::Full => full,
        View::Masked => masked(full),
        View::WithoutContent => pb::Delivery { subject: String::new(), body: String::new(), html_body: String::new(), ..masked(full) },
    }
}

/// An email address or phone number as callers without `pii` see it.
pub fn masked_recipient(channel: pb::Channel, recipient: &str) -> String {
    match channel {
        pb::Channel::Email => crm_kit::mask::email(recipient),
        pb::Channel::Sms => crm_kit::mask::phone(recipient),
        _ => recipient.to_owned(),
    }
}

/// `d` with its address and rendered text masked (see `crm_kit::mask`).
pub fn masked(d: pb::Delivery) -> pb::Delivery {
    let channel = pb::Channel::try_from(d.channel).unwrap_or_default();
    pb::Delivery {
        recipient: masked_recipient(channel, &d.recipient),
        subject: crm_kit::mask::text(&d.subject),
        body: crm_kit::mask::text(&d.body),
        html_body: crm_kit::mask::text(&d.html_body),
        ..d
    }
}

/// The proto value of a campaign state.
pub fn campaign_state_to(state: CampaignState) -> pb::CampaignState {
    match state {
        CampaignState::Draft => pb::CampaignState::Draft,
        CampaignState::Scheduled => pb::CampaignState::Scheduled,
        CampaignState::Running => pb::CampaignState::Running,
        CampaignState::Paused => pb::CampaignState::Paused,
        CampaignState::Completed => pb::CampaignState::Completed,
        CampaignState::Cancelled => pb::CampaignState::Cancelled,
    }
}

/// Counts from the stored (status, skip reason, count) sums.
pub fn campaign_counts(sums: &[(String, String, i64)]) -> pb::CampaignCounts {
    let mut counts = pb::CampaignCounts::default();
    for (status, reason, n) in sums {
        match status.as_str() {
            "QUEUED" => counts.queued += n,
            "SENT" => counts.sent += n,
            "FAILED" => {
                counts.failed += n;
                if reason == "BOUNCED" {
                    counts.bounced += n;
                }
            }
            "CANCELLED" => counts.cancelled += n,
            // Not a status: a recipient who followed the message's unsubscribe link (already counted as sent).
            "UNSUBSCRIBED" => counts.unsubscribed += n,
            // Receipts of sent messages (already counted as sent).
            "DELIVERED" => counts.delivered += n,
            "UNDELIVERED" => {
                counts.undelivered += n;
                // A bounce report after the relay had accepted it.
                if reason == "BOUNCED" {
                    counts.bounced += n;
                }
            }
            // Engagement with sent messages (already counted as sent).
            "OPENED" => counts.opened += n,
            "CLICKED" => counts.clicked += n,
            "SKIPPED" => {
                counts.skipped += n;
                counts.skipped_by_reason.push(pb::SkipCount { reason: skip_reason_to(reason) as i32, count: *n });
            }
            // Not statuses: an A/B/n test's members without a message (yet).
            "HOLDOUT" => counts.holdout += n,
            "AWAITING_WINNER" => counts.awaiting_winner += n,
            _ => {}
        }
    }
    counts.targeted =
        counts.queued + counts.sent + counts.failed + counts.cancelled + counts.skipped + counts.holdout + counts.awaiting_winner;
    counts.skipped_by_reason.sort_by_key(|c| c.reason);
    counts
}

/// A stored campaign as the API shows it, with `counts` (None: not read, as in events).
pub fn campaign_to(row: &CampaignRow, counts: Option<pb::CampaignCounts>) -> pb::Campaign {
    pb::Campaign {
        name: CAMPAIGN.name(row.id),
        display_name: row.display_name.clone(),
        template: TEMPLATE.name(row.template_id),
        audience: Some(pb::Audience { filter: row.audience_filter.clone() }),
        variables: row.variables.0.clone(),
        schedule_time: row.schedule_time.map(to_timestamp),
        local_send_time: row.local_send_minute.map(campaign_tests::time_of_day),
        ab_test: campaign_tests::campaign_test_to(row),
        attribution_window_days: row.attribution_window_days,
        questionnaire: row.questionnaire_id.map(|q| QUESTIONNAIRE.name(q)).unwrap_or_default(),
        state: campaign_state_to(row.state) as i32,
        counts,
        start_time: row.start_time.map(to_timestamp),
        run_time: row.run_time.map(to_timestamp),
        end_time: row.end_time.map(to_timestamp),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// A campaign request's written fields, validated (the template's existence
/// and variables are checked against the stored template by the use case).
pub fn campaign_fields(c: &pb::Campaign) -> Result<CampaignFields, Error> {
    let mut v = Vec::new();
    let display_name = c.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 200 {
        v.push(FieldViolation::new("campaign.display_name", "INVALID_VALUE", "1-200 characters"));
    }
    let template_id = match TEMPLATE.parse(&c.template, "campaign.template") {
        Ok(id) => Some(id),
        Err(Error::InvalidArgument { violations }) => {
            v.extend(violations);
            None
        }
        Err(other) => return Err(other),
    };
    let filter = c.audience.as_ref().map(|a| a.filter.trim().to_owned()).unwrap_or_default();
    if filter.len() > 2000 {
        v.push(FieldViolation::new("campaign.audience.filter", "TOO_LONG", "at most 2000 characters"));
    }
    if c.variables.len() > 100 || c.variables.iter().any(|(k, val)| k.is_empty() || k.len() > 64 || val.len() > 10_000) {
        v.push(FieldViolation::new(
            "campaign.variables",
            "INVALID_VARIABLES",
            "at most 100 variables, names of 1-64 and values of at most 10 000 bytes",
        ));
    }
    let schedule_time = match &c.schedule_time {
        Some(t) => match crm_kit::time::from_timestamp(t) {
            Some(t) => Some(t),
            None => {
                v.push(FieldViolation::new("campaign.schedule_time", "INVALID_TIME", "not a valid timestamp"));
                None
            }
        },
        None => None,
    };
    let local_send_minute = c.local_send_time.as_ref().and_then(|t| campaign_tests::minute_of_day(t, "campaign.local_send_time", &mut v));
    let ab_test = c.ab_test.as_ref().and_then(|t| campaign_tests::campaign_test_from(t, &mut v));
    let attribution_window_days = match c.attribution_window_days {
        0 => crate::app::attribution::WINDOW_DAYS as i32,
        days @ 1..=90 => days,
        _ => {
            v.push(FieldViolation::new("campaign.attribution_window_days", "INVALID_WINDOW", "1-90 days"));
            0
        }
    };
    let questionnaire_id = match c.questionnaire.as_str() {
        "" => None,
        name => match QUESTIONNAIRE.parse(name, "campaign.questionnaire") {
            Ok(id) => Some(id),
            Err(Error::InvalidArgument { violations }) => {
                v.extend(violations);
                None
            }
            Err(other) => return Err(other),
        },
    };
    match template_id {
        Some(template_id) if v.is_empty() => Ok(CampaignFields {
            display_name,
            template_id,
            audience_filter: filter,
            variables: c.variables.clone(),
            schedule_time,
            local_send_minute,
            ab_test,
            attribution_window_days,
            questionnaire_id,
        }),
        _ => Err(Error::InvalidArgument { violations: v }),
    }
}

/// A stored contact policy as the API shows it.
pub fn contact_policy_to(row: &ContactPolicyRow) -> pb::ContactPolicy {
    let time = |minutes: Option<i32>| {
        minutes.map(|m| crm_proto::google::r#type::TimeOfDay { hours: m / 60, minutes: m % 60, seconds: 0, nanos: 0 })
    };
    pb::ContactPolicy {
        name: "contactPolicy".into(),
        time_zone: row.time_zone.clone(),
        quiet_hours_start: time(row.quiet_start),
        quiet_hours_end: time(row.quiet_end),
        frequency_caps: row
            .caps
            .0
            .iter()
            .filter_map(|c| {
                Some(pb::FrequencyCap {
                    channel: channel_to(Channel::parse(&c.channel)?) as i32,
                    max_per_day: i32::try_from(c.per_day).unwrap_or(i32::MAX),
                    max_per_week: i32::try_from(c.per_week).unwrap_or(i32::MAX),
                })
            })
            .collect(),
        update_time: row.update_time.map(to_timestamp),
        etag: etag::of_revision(row.revision),
    }
}

/// A contact policy request, validated, as it is stored.
pub fn contact_policy_from(p: &pb::ContactPolicy) -> Result<ContactPolicyRow, Error> {
    let mut v = Vec::new();
    let time_zone = p.time_zone.trim().to_owned();
    if !time_zone.is_empty() && time_zone.parse::<chrono_tz::Tz>().is_err() {
        v.push(FieldViolation::new("contact_policy.time_zone", "INVALID_TIME_ZONE", "an IANA time zone such as Asia/Shanghai"));
    }
    let minutes = |t: &Option<crm_proto::google::r#type::TimeOfDay>, field: &str, v: &mut Vec<FieldViolation>| match t {
        None => None,
        Some(t) if (0..24).contains(&t.hours) && (0..60).contains(&t.minutes) && t.seconds == 0 && t.nanos == 0 => {
            Some(t.hours * 60 + t.minutes)
        }
        Some(_) => {
            v.push(FieldViolation::new(format!("contact_policy.{field}"), "INVALID_TIME", "hours 0-23 and minutes 0-59"));
            None
        }
    };
    let quiet_start = minutes(&p.quiet_hours_start, "quiet_hours_start", &mut v);
    let quiet_end = minutes(&p.quiet_hours_end, "quiet_hours_end", &mut v);
    if quiet_start.is_some() != quiet_end.is_some() {
        v.push(FieldViolation::new(
            "contact_policy.quiet_hours_end",
            "INCOMPLETE_QUIET_HOURS",
            "give both the start and the end, or neither",
        ));
    }
    let mut caps: Vec<StoredCap> = Vec::new();
    for (i, cap) in p.frequency_caps.iter().enumerate() {
        let field = format!("contact_policy.frequency_caps[{i}]");
        let Ok(channel) = channel_from(cap.channel, &format!("{field}.channel")) else {
            v.push(FieldViolation::new(format!("{field}.channel"), "INVALID_CHANNEL", "one of CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH"));
            continue;
        };
        if cap.max_per_day < 0 || cap.max_per_week < 0 {
            v.push(FieldViolation::new(field.clone(), "OUT_OF_RANGE", "caps are 0 (no limit) or more"));
        }
        if caps.iter().any(|c| c.channel == channel.as_str()) {
            v.push(FieldViolation::new(format!("{field}.channel"), "DUPLICATE_CHANNEL", "one cap per channel"));
        }
        caps.push(StoredCap {
            channel: channel.as_str().to_owned(),
            per_day: u32::try_from(cap.max_per_day).unwrap_or(0),
            per_week: u32::try_from(cap.max_per_week).unwrap_or(0),
        });
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok(ContactPolicyRow { time_zone, quiet_start, quiet_end, caps: sqlx::types::Json(caps), ..ContactPolicyRow::default() })
}
