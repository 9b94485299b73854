//! Providers in and out: a stored provider as the API shows it (credentials
//! never, only whether some are stored) and each kind's settings from a
//! request, validated, with the secret it carries.

use crm_kit::{Error, FieldViolation, etag, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use super::channel_to;
use crate::{
    resources::PROVIDER,
    store::providers::{AliyunSmsSettings, FcmSettings, ProviderRow, ProviderSettings, SmtpSettings, TwilioSettings, WebhookSettings},
};

/// A stored provider as the API shows it: credentials never, only whether some are stored.
pub fn provider_to(row: &ProviderRow) -> pb::Provider {
    let settings = match &row.settings.0 {
        ProviderSettings::Smtp(s) => pb::provider::Settings::Smtp(pb::SmtpSettings {
            host: s.host.clone(),
            port: i32::from(s.port),
            security: match s.security.as_str() {
                "TLS" => pb::SmtpSecurity::Tls,
                "STARTTLS" => pb::SmtpSecurity::Starttls,
                _ => pb::SmtpSecurity::None,
            } as i32,
            username: s.username.clone(),
            password: String::new(),
            password_set: row.credentials.is_some(),
            from_address: s.from_address.clone(),
            from_name: s.from_name.clone(),
            dkim_domain: s.dkim_domain.clone(),
            dkim_selector: s.dkim_selector.clone(),
            dkim_private_key: String::new(),
            dkim_private_key_set: row.dkim_key.is_some(),
        }),
        ProviderSettings::Twilio(t) => pb::provider::Settings::Twilio(pb::TwilioSettings {
            account_sid: t.account_sid.clone(),
            auth_token: String::new(),
            auth_token_set: row.credentials.is_some(),
            from: t.from.clone(),
            messaging_service_sid: t.messaging_service_sid.clone(),
            base_url: t.base_url.clone(),
        }),
        ProviderSettings::AliyunSms(a) => pb::provider::Settings::AliyunSms(pb::AliyunSmsSettings {
            access_key_id: a.access_key_id.clone(),
            access_key_secret: String::new(),
            access_key_secret_set: row.credentials.is_some(),
            sign_name: a.sign_name.clone(),
            template_code: a.template_code.clone(),
            endpoint: a.endpoint.clone(),
        }),
        ProviderSettings::Webhook(w) => pb::provider::Settings::Webhook(pb::WebhookSettings {
            url: w.url.clone(),
            secret: String::new(),
            secret_set: row.credentials.is_some(),
        }),
        ProviderSettings::Fcm(f) => pb::provider::Settings::Fcm(pb::FcmSettings {
            project_id: f.project_id.clone(),
            service_account_key: String::new(),
            service_account_key_set: row.credentials.is_some(),
            client_email: f.client_email.clone(),
            base_url: f.base_url.clone(),
        }),
    };
    pb::Provider {
        name: PROVIDER.name(row.id),
        display_name: row.display_name.clone(),
        channel: channel_to(row.channel) as i32,
        max_per_second: row.max_per_second,
        settings: Some(settings),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
        // Set by the handlers, which know the public URL (events carry none).
        callback_url: String::new(),
    }
}

/// What an SMTP provider request carries in clear: its password and DKIM key (each `None` when left empty).
#[derive(Debug, Clone, Default)]
pub struct SmtpSecrets {
    pub password: Option<String>,
    pub dkim_private_key: Option<String>,
}

/// A provider request's settings, validated, with its secrets.
pub fn smtp_settings(s: &pb::SmtpSettings, field: &str) -> Result<(SmtpSettings, SmtpSecrets), Error> {
    let mut v = Vec::new();
    let host = s.host.trim().to_owned();
    if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        v.push(FieldViolation::new(format!("{field}.host"), "INVALID_HOST", "a host name or IP address"));
    }
    let security = match pb::SmtpSecurity::try_from(s.security) {
        Ok(pb::SmtpSecurity::Tls) => "TLS",
        Ok(pb::SmtpSecurity::Starttls) => "STARTTLS",
        Ok(pb::SmtpSecurity::None) => "NONE",
        _ => {
            v.push(FieldViolation::new(format!("{field}.security"), "INVALID_SECURITY", "one of TLS, STARTTLS, NONE"));
            "NONE"
        }
    };
    let port = match s.port {
        0 => crate::channels::email::default_port(security),
        p => u16::try_from(p).unwrap_or_else(|_| {
            v.push(FieldViolation::new(format!("{field}.port"), "INVALID_PORT", "1-65535"));
            0
        }),
    };
    if s.from_address.trim().parse::<lettre::Address>().is_err() {
        v.push(FieldViolation::new(format!("{field}.from_address"), "INVALID_EMAIL", "a valid email address"));
    }
    if s.from_name.chars().count() > 200 || s.username.chars().count() > 320 || s.password.len() > 1024 {
        v.push(FieldViolation::new(field.to_owned(), "TOO_LONG", "from_name at most 200, username 320, password 1024 characters"));
    }
    let (dkim_domain, dkim_selector) = (s.dkim_domain.trim().to_ascii_lowercase(), s.dkim_selector.trim().to_owned());
    let label = |v: &str| !v.is_empty() && v.len() <= 253 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !dkim_domain.is_empty() && !label(&dkim_domain) {
        v.push(FieldViolation::new(format!("{field}.dkim_domain"), "INVALID_DOMAIN", "a domain name such as example.com"));
    }
    if !dkim_selector.is_empty() && !label(&dkim_selector) {
        v.push(FieldViolation::new(format!("{field}.dkim_selector"), "INVALID_SELECTOR", "letters, digits, '.', '-' and '_'"));
    }
    if dkim_domain.is_empty() != dkim_selector.is_empty() || (dkim_domain.is_empty() && !s.dkim_private_key.is_empty()) {
        v.push(FieldViolation::new(
            format!("{field}.dkim_domain"),
            "DKIM_INCOMPLETE",
            "DKIM needs a domain, a selector and a private key together",
        ));
    }
    if !s.dkim_private_key.is_empty() && crate::channels::email::dkim_key(&s.dkim_private_key).is_err() {
        v.push(FieldViolation::new(
            format!("{field}.dkim_private_key"),
            "INVALID_DKIM_KEY",
            "an RSA private key in PKCS#1 PEM (-----BEGIN RSA PRIVATE KEY-----)",
        ));
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    let settings = SmtpSettings {
        host,
        port,
        security: security.to_owned(),
        username: s.username.trim().to_owned(),
        from_address: s.from_address.trim().to_owned(),
        from_name: s.from_name.trim().to_owned(),
        dkim_domain,
        dkim_selector,
    };
    let secrets = SmtpSecrets { password: secret(&s.password), dkim_private_key: secret(&s.dkim_private_key) };
    Ok((settings, secrets))
}

/// A secret field's value: `None` when left empty (keep the stored one).
fn secret(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// A short identifier field: 1-`max` printable ASCII characters.
fn identifier(value: &str, field: String, max: usize, v: &mut Vec<FieldViolation>) -> String {
    let value = value.trim();
    if value.is_empty() || value.len() > max || !value.chars().all(|c| c.is_ascii_graphic()) {
        v.push(FieldViolation::new(field, "INVALID_VALUE", format!("1-{max} printable ASCII characters")));
    }
    value.to_owned()
}

/// A URL field that must parse; the scheme and address are checked when a client is built.
fn url_field(value: &str, default: &str, field: String, v: &mut Vec<FieldViolation>) -> String {
    let value = if value.trim().is_empty() { default } else { value.trim() };
    if reqwest::Url::parse(value).map(|u| u.host_str().is_none()).unwrap_or(true) || value.len() > 2000 {
        v.push(FieldViolation::new(field, "INVALID_URL", "an absolute https URL"));
    }
    value.trim_end_matches('/').to_owned()
}

/// Twilio settings from a request, validated, with the auth token (if any).
pub fn twilio_settings(t: &pb::TwilioSettings, field: &str) -> Result<(TwilioSettings, Option<String>), Error> {
    let mut v = Vec::new();
    let account_sid = identifier(&t.account_sid, format!("{field}.account_sid"), 64, &mut v);
    let from = t.from.trim().to_owned();
    let messaging_service_sid = t.messaging_service_sid.trim().to_owned();
    if from.is_empty() == messaging_service_sid.is_empty() {
        v.push(FieldViolation::new(format!("{field}.from"), "INVALID_SENDER", "give either from or messaging_service_sid"));
    }
    let base_url = url_field(&t.base_url, "https://api.twilio.com", format!("{field}.base_url"), &mut v);
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok((TwilioSettings { account_sid, from, messaging_service_sid, base_url }, secret(&t.auth_token)))
}

/// Aliyun SMS settings from a request, validated, with the secret (if any).
pub fn aliyun_settings(a: &pb::AliyunSmsSettings, field: &str) -> Result<(AliyunSmsSettings, Option<String>), Error> {
    let mut v = Vec::new();
    let access_key_id = identifier(&a.access_key_id, format!("{field}.access_key_id"), 128, &mut v);
    let template_code = identifier(&a.template_code, format!("{field}.template_code"), 64, &mut v);
    let sign_name = a.sign_name.trim().to_owned();
    if sign_name.is_empty() || sign_name.chars().count() > 40 {
        v.push(FieldViolation::new(format!("{field}.sign_name"), "INVALID_VALUE", "1-40 characters"));
    }
    let endpoint = url_field(&a.endpoint, "https://dysmsapi.aliyuncs.com", format!("{field}.endpoint"), &mut v);
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok((AliyunSmsSettings { access_key_id, sign_name, template_code, endpoint }, secret(&a.access_key_secret)))
}

/// Webhook settings from a request, validated, with the secret (if any).
pub fn webhook_settings(w: &pb::WebhookSettings, field: &str) -> Result<(WebhookSettings, Option<String>), Error> {
    let mut v = Vec::new();
    let url = url_field(&w.url, "", format!("{field}.url"), &mut v);
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok((WebhookSettings { url }, secret(&w.secret)))
}

/// FCM settings from a request, validated, with the key file (if any) and
/// the OAuth token endpoint it names. Without a new key, `client_email` is
/// the stored one (what the request shows of it).
pub fn fcm_settings(f: &pb::FcmSettings, field: &str) -> Result<(FcmSettings, Option<String>, Option<String>), Error> {
    let mut v = Vec::new();
    let project_id = f.project_id.trim().to_owned();
    // Firebase project ids: 6-30 lowercase letters, digits and hyphens.
    if !(6..=30).contains(&project_id.len()) || !project_id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        v.push(FieldViolation::new(format!("{field}.project_id"), "INVALID_VALUE", "6-30 lowercase letters, digits and hyphens"));
    }
    let base_url = url_field(&f.base_url, "https://fcm.googleapis.com", format!("{field}.base_url"), &mut v);
    let mut client_email = f.client_email.trim().to_owned();
    let mut token_uri = None;
    if !f.service_account_key.is_empty() {
        match crate::channels::fcm::ServiceAccount::parse(&f.service_account_key) {
            Ok((account, _)) => {
                client_email = account.client_email;
                token_uri = Some(account.token_uri);
            }
            Err(problem) => v.push(FieldViolation::new(format!("{field}.service_account_key"), "INVALID_KEY", problem)),
        }
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok((FcmSettings { project_id, client_email, base_url }, secret(&f.service_account_key), token_uri))
}
