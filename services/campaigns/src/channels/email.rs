//! Email over SMTP (lettre): a pooled connection per provider, STARTTLS or
//! implicit TLS, to the relay's checked address (see `crm_kit::egress`).
//!
//! Every message carries `Message-ID: <{delivery id}@{sender's domain}>`, the
//! delivery's idempotency key at the receiving end: a message re-submitted
//! after its sender died mid-submission is the same message to mail stores
//! and clients that de-duplicate by Message-ID.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart, SinglePart,
        dkim::{DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey, dkim_sign},
        header::{ContentType, Header, HeaderName, HeaderValue},
    },
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use uuid::Uuid;

use crate::{
    domain::delivery::{Outcome, is_hard_bounce},
    store::providers::SmtpSettings,
};

/// Connections kept open per relay.
pub const POOL_SIZE: u32 = 8;
/// Longest an SMTP command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A rendered email to one recipient.
#[derive(Debug, Clone, Copy)]
pub struct Email<'a> {
    pub delivery: Uuid,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// Where the mail client's unsubscribe button posts (RFC 8058).
    pub unsubscribe_url: Option<&'a str>,
}

/// Sends through one SMTP relay.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
    /// Signs every message when the provider has a DKIM key.
    dkim: Option<DkimConfig>,
}

/// Settings that cannot make a transport.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error(transparent)]
    Egress(#[from] crm_kit::egress::EgressError),
    #[error("invalid sender address {0:?}")]
    From(String),
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("the DKIM key is not an RSA private key in PKCS#1 PEM")]
    Dkim,
}

/// The DKIM signing key in `pem` (RSA, PKCS#1).
pub fn dkim_key(pem: &str) -> Result<DkimSigningKey, SmtpSetupError> {
    DkimSigningKey::new(pem.trim(), DkimSigningAlgorithm::Rsa).map_err(|_| SmtpSetupError::Dkim)
}

/// Signing as `settings`' DKIM domain and selector with `pem`: the headers a
/// receiver shows and threads by, relaxed canonicalization (survives
/// relays that re-fold headers or trailing spaces), RSA-SHA256.
fn dkim_config(settings: &SmtpSettings, pem: &str) -> Result<DkimConfig, SmtpSetupError> {
    let headers = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
    let relaxed = DkimCanonicalization { header: DkimCanonicalizationType::Relaxed, body: DkimCanonicalizationType::Relaxed };
    Ok(DkimConfig::new(settings.dkim_selector.clone(), settings.dkim_domain.clone(), dkim_key(pem)?, headers, relaxed))
}

/// The port a security mode uses when none is given.
pub fn default_port(security: &str) -> u16 {
    match security {
        "TLS" => 465,
        "STARTTLS" => 587,
        _ => 25,
    }
}

impl SmtpSender {
    /// A sender for `settings` with `password`, connecting lazily to the
    /// relay's address as resolved and checked now.
    pub async fn new(
        settings: &SmtpSettings,
        password: Option<String>,
        dkim_private_key: Option<String>,
        allow_private: bool,
    ) -> Result<Self, SmtpSetupError> {
        let address = crm_kit::egress::resolve(&settings.host, settings.port, allow_private).await?;
        let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| SmtpSetupError::Tls(e.to_string()));
        let tls = match settings.security.as_str() {
            "TLS" => Tls::Wrapper(tls(&settings.host)?),
            "STARTTLS" => Tls::Required(tls(&settings.host)?),
            _ => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(POOL_SIZE));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(settings.username.clone(), password.unwrap_or_default()));
        }
        let address: lettre::Address = settings.from_address.parse().map_err(|_| SmtpSetupError::From(settings.from_address.clone()))?;
        let domain = address.domain().to_owned();
        let name = (!settings.from_name.is_empty()).then(|| settings.from_name.clone());
        let dkim = match dkim_private_key.filter(|_| !settings.dkim_domain.is_empty()) {
            Some(pem) => Some(dkim_config(settings, &pem)?),
            None => None,
        };
        Ok(Self { transport: builder.build(), from: Mailbox::new(name, address), domain, dkim })
    }

    /// Submits `email`; the relay's answer as an [`Outcome`].
    pub async fn send(&self, email: Email<'_>) -> Outcome {
        let to: Mailbox = match email.to.parse() {
            Ok(to) => to,
            Err(_) => return Outcome::Permanent { error: "the recipient address is not a valid email address".into() },
        };
        let message_id = format!("<{}@{}>", email.delivery, self.domain);
        let mut builder = Message::builder().from(self.from.clone()).to(to).subject(email.subject).message_id(Some(message_id.clone()));
        if let Some(url) = email.unsubscribe_url {
            // RFC 8058: the client POSTs `List-Unsubscribe=One-Click` to the URL; no mailto, no login.
            builder = builder.header(ListUnsubscribe(format!("<{url}>"))).header(ListUnsubscribePost);
        }
        let message = match (email.text.is_empty(), email.html.is_empty()) {
            (false, false) => builder.multipart(MultiPart::alternative_plain_html(email.text.to_owned(), email.html.to_owned())),
            (true, false) => builder.singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(email.html.to_owned())),
            _ => builder.singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.text.to_owned())),
        };
        let mut message = match message {
            Ok(m) => m,
            Err(e) => return Outcome::Permanent { error: format!("the message cannot be built: {e}") },
        };
        if let Some(dkim) = &self.dkim {
            dkim_sign(&mut message, dkim);
        }
        match self.transport.send(message).await {
            Ok(_) => Outcome::Accepted { message_id },
            // A 5xx reply: the relay refuses this message for good.
            Err(e) if e.is_permanent() => {
                let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                match is_hard_bounce(&code, &e.to_string()) {
                    true => Outcome::Bounced { error: smtp_error(&e) },
                    false => Outcome::Permanent { error: smtp_error(&e) },
                }
            }
            // 4xx replies, timeouts, refused or dropped connections: try again later.
            Err(e) => Outcome::Temporary { error: smtp_error(&e) },
        }
    }
}

/// `List-Unsubscribe: <https://…>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// The relay's reply or the transport failure, without the recipient's address.
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let text = crm_kit::error::cause_chain(e);
    crm_kit::mask::text(&text)
}
