//! Bounce reports of email: RFC 3464 delivery status notifications, which
//! the relay or the recipient's server mails back to the envelope sender
//! when a message it had accepted cannot be delivered after all. A bounce
//! mailbox forwards them raw (a mail server's pipe, an ESP's forwarder) to
//! the SMTP provider's callback URL, whose signed name is the credential.
//!
//! The report quotes the original message's headers (`text/rfc822-headers`
//! or the whole `message/rfc822`); our `Message-ID: <{delivery id}@…>`
//! there names the delivery. Its per-recipient fields say what happened:
//! `Action: failed` with `Status: 5.1.x` is a hard bounce (the address does
//! not exist: suppressed like a refusal at submission), another failure is
//! undelivered, `delivered`/`relayed`/`expanded` are delivered, and
//! `delayed` is not final and changes nothing.

use uuid::Uuid;

use super::callbacks::CallbackError;
use crate::domain::inbound::{MessageKey, Receipt, Report};

/// The report in `body` (a raw DSN message), as receipts; empty for a delay notice.
pub fn parse(body: &[u8]) -> Result<Vec<Report>, CallbackError> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    // The report's own headers (its own Message-ID among them) end at the first blank line.
    let (_, report) = text.split_once("\n\n").ok_or_else(|| malformed("a mail message: headers, a blank line, a body"))?;
    let lines = unfolded(report);
    let field = |name: &str| {
        lines.iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let action = field("Action").ok_or_else(|| malformed("no per-recipient Action field: not a delivery status notification"))?;
    let delivery = lines
        .iter()
        .filter_map(|line| line.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case("Message-ID")).map(|(_, v)| v))
        .find_map(|value| {
            let local = value.trim().trim_start_matches('<').split('@').next()?;
            Uuid::parse_str(local).ok()
        })
        .ok_or_else(|| malformed("the report does not quote one of our messages' Message-ID"))?;
    let status = field("Status").unwrap_or_default();
    let status_code = status.split_whitespace().next().unwrap_or_default().to_owned();
    let message = MessageKey::Delivery(delivery);
    Ok(match action.to_ascii_lowercase().as_str() {
        "failed" => {
            let diagnostic = field("Diagnostic-Code").unwrap_or_default();
            let error = crm_kit::mask::text(&format!("DSN {status_code}: {diagnostic}"));
            vec![Report::Receipt(Receipt { message, delivered: false, error, bounced: status_code.starts_with("5.1.") })]
        }
        "delivered" | "relayed" | "expanded" => {
            vec![Report::Receipt(Receipt { message, delivered: true, error: String::new(), bounced: false })]
        }
        // `delayed`: the server keeps trying; only a final report is a receipt.
        _ => Vec::new(),
    })
}

fn malformed(what: &str) -> CallbackError {
    CallbackError::Malformed(what.to_owned())
}

/// The lines of `text` with folded header continuations joined to their field.
fn unfolded(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.starts_with([' ', '\t']), lines.last_mut()) {
            (true, Some(last)) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERY: &str = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";

    /// A bounce as Postfix writes it.
    fn report(action: &str, status: &str, diagnostic: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.example.org\r\nMessage-ID: <20261126.ABC@mx.example.org>\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
             Final-Recipient: rfc822; ann@example.com\r\nAction: {action}\r\nStatus: {status}\r\n\
             Diagnostic-Code: smtp; {diagnostic}\r\n\r\n\
             --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: News <news@crm.example>\r\n\
             Message-ID:\r\n <{DELIVERY}@crm.example>\r\nSubject: Autumn news\r\n\r\n--B--\r\n"
        )
    }

    fn receipt(reports: &[Report]) -> &Receipt {
        match reports {
            [Report::Receipt(r)] => r,
            other => panic!("one receipt: {other:?}"),
        }
    }

    #[test]
    fn a_hard_bounce_names_our_delivery_and_suppresses() {
        let reports = parse(report("failed", "5.1.1", "550 5.1.1 <ann@example.com>: Recipient address rejected").as_bytes()).unwrap();
        let r = receipt(&reports);
        assert_eq!(r.message, MessageKey::Delivery(Uuid::parse_str(DELIVERY).unwrap()), "the quoted Message-ID, not the report's own");
        assert!(!r.delivered && r.bounced);
        assert!(r.error.starts_with("DSN 5.1.1: smtp; 550 5.1.1") && !r.error.contains("ann@example.com"), "{}", r.error);
    }

    #[test]
    fn a_full_mailbox_is_undelivered_but_no_bounce_and_a_delay_is_nothing_yet() {
        let full = parse(report("failed", "5.2.2", "552 5.2.2 mailbox full").as_bytes()).unwrap();
        assert!(!receipt(&full).delivered && !receipt(&full).bounced);
        assert!(parse(report("delayed", "4.4.7", "timeout").as_bytes()).unwrap().is_empty());
        assert!(receipt(&parse(report("relayed", "2.0.0", "").as_bytes()).unwrap()).delivered);
    }

    #[test]
    fn anything_else_is_refused_as_malformed() {
        assert!(matches!(parse(b"no blank line"), Err(CallbackError::Malformed(_))));
        assert!(matches!(parse(b"Subject: hi\r\n\r\nhello"), Err(CallbackError::Malformed(_))));
        let foreign = report("failed", "5.1.1", "x").replace(DELIVERY, "not-ours");
        assert!(matches!(parse(foreign.as_bytes()), Err(CallbackError::Malformed(_))));
    }
}
