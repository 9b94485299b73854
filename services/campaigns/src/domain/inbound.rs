//! What providers report back — receipts and messages customers send —
//! which of the tenant's messages a reply answers (by the address it comes
//! from), and whether it opts out.
//!
//! Opt-out keywords: a text message that is one of them (alone, any case,
//! surrounding spaces and punctuation ignored) withdraws the sender's SMS
//! marketing consent. The list is the carriers' and providers' standard:
//! Twilio's and the US CTIA's (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
//! OPTOUT, REVOKE) and China's (TD, T, 退订, 取消订阅). A sentence that merely
//! contains one ("please don't stop") is a reply, not an opt-out.

use uuid::Uuid;

/// One thing a provider reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The final fate of a message it accepted.
    Receipt(Receipt),
    /// A message a customer sent.
    Inbound(Inbound),
}

/// A delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message: MessageKey,
    pub delivered: bool,
    /// The provider's reason when it was not delivered.
    pub error: String,
    /// Not delivered because the address does not exist (a hard bounce): nothing more goes to it.
    pub bounced: bool,
}

/// How a receipt names its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKey {
    /// The provider's own id (what the send returned).
    Provider(String),
    /// The delivery id, echoed by the provider.
    Delivery(Uuid),
}

/// A message from a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The provider's id of it (unique per provider: replays are dropped by it).
    pub id: String,
    pub from: String,
    pub to: String,
    pub text: String,
}

/// The keywords, upper case.
const KEYWORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE", "TD", "T", "退订", "取消订阅"];

/// Whether `text` is an opt-out keyword.
pub fn is_opt_out(text: &str) -> bool {
    let word = text.trim_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation() || "。！，、".contains(c));
    let upper = word.to_uppercase();
    KEYWORDS.contains(&upper.as_str())
}

/// The forms under which a reply's sender may have been addressed: as the
/// provider wrote it, in E.164 with `+`, and — for an 11-digit Chinese mobile
/// number as Aliyun writes it (`13800138000`) — with `+86`.
pub fn sender_addresses(from: &str) -> Vec<String> {
    let digits: String = from.chars().filter(char::is_ascii_digit).collect();
    let mut forms = vec![from.trim().to_owned()];
    if !digits.is_empty() {
        let international = digits.strip_prefix("00").unwrap_or(&digits);
        forms.push(format!("+{international}"));
        // Only a number written without its country code can be a bare Chinese mobile number.
        if !from.trim_start().starts_with('+') && digits.len() == 11 && digits.starts_with('1') {
            forms.push(format!("+86{digits}"));
        }
    }
    forms.sort();
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::{is_opt_out, sender_addresses};

    #[test]
    fn a_sender_is_looked_for_in_each_form_it_may_have_been_sent_to() {
        assert_eq!(sender_addresses("+15551234567"), vec!["+15551234567"]);
        assert_eq!(sender_addresses("13800138000"), vec!["+13800138000", "+8613800138000", "13800138000"]);
        assert_eq!(sender_addresses("0044 20 7946 0000"), vec!["+442079460000", "0044 20 7946 0000"]);
    }

    #[test]
    fn keywords_alone_opt_out_in_any_case() {
        for text in ["STOP", "stop", " Stop. ", "td", "T", "退订", "退订。", "unsubscribe!", "取消订阅"] {
            assert!(is_opt_out(text), "{text:?}");
        }
    }

    #[test]
    fn replies_that_mention_a_keyword_do_not() {
        for text in ["please don't stop", "stop it now", "TDX", "我要退订吗", "", "1", "Thanks"] {
            assert!(!is_opt_out(text), "{text:?}");
        }
    }
}
