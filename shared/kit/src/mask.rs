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

/// Free text (a rendered message) with every email address masked like
/// [`email`] and every run of 7 or more digits (phone, account and ID
/// numbers) masked like [`phone`]; other text stays readable.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        let (core, space) = word.split_at(word.trim_end().len());
        if core.contains('@') && core.contains('.') {
            let start = core.find(|c: char| c.is_alphanumeric()).unwrap_or(0);
            let end = core.rfind(|c: char| c.is_alphanumeric()).map_or(core.len(), |i| i + 1);
            out.push_str(&core[..start]);
            out.push_str(&email(&core[start..end]));
            out.push_str(&core[end..]);
        } else {
            mask_digit_runs(core, &mut out);
        }
        out.push_str(space);
    }
    out
}

fn mask_digit_runs(text: &str, out: &mut String) {
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 7 {
            out.push_str(&phone(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, out);
            out.push(c);
        }
    }
    flush(&mut run, out);
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

    #[test]
    fn free_text_masks_addresses_and_long_numbers_only() {
        assert_eq!(
            text("Dear Li, call +8613812341234 or mail <li.lei@example.com>. Amount: 328.00, order 12345."),
            "Dear Li, call +86*******1234 or mail <l***@example.com>. Amount: 328.00, order 12345."
        );
        assert_eq!(text("账号6222021234567890123已扣款"), "账号622************0123已扣款");
    }
}
