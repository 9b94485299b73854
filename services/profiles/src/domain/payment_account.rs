//! A payment account's writable data after validation (客户帐号), and how
//! its number is shown to callers without `pii`.

/// A payment account as a request describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAccountDraft {
    pub holder_name: String,
    pub bank: String,
    pub branch: String,
    /// Letters and digits only, upper-cased.
    pub account_number: String,
    pub primary: bool,
}

/// `number` normalised — spaces and dashes dropped, letters upper-cased — if
/// it is 4-34 letters and digits (a domestic account number or an IBAN).
pub fn account_number(number: &str) -> Option<String> {
    let cleaned: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect::<String>().to_ascii_uppercase();
    ((4..=34).contains(&cleaned.len()) && cleaned.chars().all(|c| c.is_ascii_alphanumeric())).then_some(cleaned)
}

/// `number` as callers without `pii` see it: its last four characters.
pub fn masked_account_number(number: &str) -> String {
    let tail: String = number.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_and_masked_to_their_last_four() {
        assert_eq!(account_number("6222 0202-0011 2233 445").as_deref(), Some("6222020200112233445"));
        assert_eq!(account_number("de89 3704 0044 0532 0130 00").as_deref(), Some("DE89370400440532013000"));
        assert_eq!(account_number("12"), None);
        assert_eq!(account_number("1234/5678"), None);
        assert_eq!(masked_account_number("6222020200112233445"), "****3445");
    }
}
