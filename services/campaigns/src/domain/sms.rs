//! How long a text is as an SMS: its encoding, length in the encoding's
//! units and the number of messages (segments) it is sent as.
//!
//! A text whose every character is in the GSM 03.38 alphabet travels in 7-bit
//! units (septets): 160 fit one message; a longer text is split into parts of
//! 153, since each part carries a 7-septet concatenation header. Characters of
//! the extension table (`^{}\[~]|€` and form feed) take two septets. Any other
//! character — Chinese text, most emoji — switches the whole message to
//! UCS-2: 70 UTF-16 units in one message, 67 per part when split (an emoji
//! outside the BMP is two units).

/// Character encoding of an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 7-bit alphabet.
    Gsm7,
    /// UTF-16.
    Ucs2,
}

/// The SMS length of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    /// The encoding it needs.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    /// Messages it is sent as (0 for an empty text).
    pub segments: usize,
}

/// The GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str =
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table (an escape septet plus one: two each).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Measures `text` as an SMS.
pub fn measure(text: &str) -> SmsLength {
    let septets: Option<usize> = text.chars().map(gsm7_septets).sum();
    let (encoding, units, single, part) = match septets {
        Some(units) => (Encoding::Gsm7, units, 160, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = match units {
        0 => 0,
        n if n <= single => 1,
        n => n.div_ceil(part),
    };
    SmsLength { encoding, units, segments }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_latin_text_is_gsm7_and_splits_at_153() {
        assert_eq!(measure(&"a".repeat(160)), SmsLength { encoding: Encoding::Gsm7, units: 160, segments: 1 });
        assert_eq!(measure(&"a".repeat(161)), SmsLength { encoding: Encoding::Gsm7, units: 161, segments: 2 });
        assert_eq!(measure(&"a".repeat(306)).segments, 2);
        assert_eq!(measure(&"a".repeat(307)).segments, 3);
    }

    #[test]
    fn extension_characters_count_twice() {
        let text = format!("{}€", "a".repeat(158));
        assert_eq!(measure(&text), SmsLength { encoding: Encoding::Gsm7, units: 160, segments: 1 });
        assert_eq!(measure(&format!("{text}a")).segments, 2);
    }

    #[test]
    fn chinese_text_is_ucs2_and_splits_at_67() {
        let fee = "您本月物业费为人民币328.00元，请于月底前缴纳。";
        let length = measure(fee);
        assert_eq!(length.encoding, Encoding::Ucs2);
        assert_eq!(length.units, fee.chars().count());
        assert_eq!(length.segments, 1);
        assert_eq!(measure(&"费".repeat(70)).segments, 1);
        assert_eq!(measure(&"费".repeat(71)).segments, 2);
        assert_eq!(measure(&"费".repeat(134)).segments, 2);
        assert_eq!(measure(&"费".repeat(135)).segments, 3);
    }

    #[test]
    fn one_character_outside_gsm7_switches_the_whole_text() {
        let length = measure(&format!("{}ç", "a".repeat(100)));
        assert_eq!(length.encoding, Encoding::Ucs2);
        assert_eq!(length.segments, 2, "101 UTF-16 units are two UCS-2 parts");
    }

    #[test]
    fn emoji_outside_the_bmp_take_two_units() {
        assert_eq!(measure("🙂").units, 2);
    }

    #[test]
    fn empty_text_is_no_message() {
        assert_eq!(measure("").segments, 0);
    }

    proptest! {
        #[test]
        fn segments_hold_the_text_and_no_more_than_needed(text in "[a-z€费]{0,400}") {
            let length = measure(&text);
            let (single, part) = match length.encoding { Encoding::Gsm7 => (160, 153), Encoding::Ucs2 => (70, 67) };
            if length.segments == 1 {
                prop_assert!(length.units <= single);
            } else if length.segments > 1 {
                prop_assert!(length.units <= length.segments * part);
                prop_assert!(length.units > (length.segments - 1) * part);
            }
            // Appending a character never makes the text shorter.
            let longer = measure(&format!("{text}a"));
            prop_assert!(longer.segments >= length.segments);
        }
    }
}
