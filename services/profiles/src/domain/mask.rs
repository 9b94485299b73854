//! Masking of personal data for callers without the `pii` permission, and
//! for logs: enough to recognise a value, not enough to use it.

/// `alice@example.com` → `a***@example.com`.
pub fn email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".to_owned(),
    }
}

/// `+8613812341234` → `+86*******1234`: the country prefix and last four digits stay.
pub fn phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_keep_first_letter_and_domain() {
        assert_eq!(email("alice@example.com"), "a***@example.com");
        assert_eq!(email("broken"), "***");
    }

    #[test]
    fn phones_keep_prefix_and_last_four() {
        assert_eq!(phone("+8613812341234"), "+86*******1234");
        assert_eq!(phone("+123456"), "*******");
    }
}
