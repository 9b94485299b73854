//! Search tokens for the knowledge base, the same for documents and queries:
//! lower-cased words of letters/digits for alphabetic scripts, and overlapping
//! character bigrams for CJK runs (Chinese has no spaces between words, and
//! bigrams match most two-character words and phrases without a dictionary;
//! a lone CJK character is kept as a unigram). Postgres stores them in a
//! `text[]` with a GIN index; relevance is the number of query tokens a
//! document contains. This needs no extension (zhparser is not available)
//! and does not depend on the cluster's locale, unlike pg_trgm for CJK.

use std::collections::BTreeSet;

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK Extension A
        | 0x4E00..=0x9FFF // CJK Unified Ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // CJK Compatibility Ideographs
        | 0x20000..=0x2A6DF)
}

/// Most tokens kept per document, so huge articles stay cheap to index.
const MAX_TOKENS: usize = 5000;

/// The distinct search tokens of `text`.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    let mut cjk_run: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut BTreeSet<String>| {
        if !word.is_empty() {
            out.insert(std::mem::take(word));
        }
    };
    let flush_cjk = |run: &mut Vec<char>, out: &mut BTreeSet<String>| {
        match run.len() {
            0 => {}
            1 => {
                out.insert(run[0].to_string());
            }
            _ => {
                for pair in run.windows(2) {
                    out.insert(pair.iter().collect());
                }
            }
        }
        run.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk_run.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk_run, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk_run, &mut out);
        }
        if out.len() >= MAX_TOKENS {
            break;
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk_run, &mut out);
    out.into_iter().take(MAX_TOKENS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_split_into_lowercase_words() {
        assert_eq!(tokens("Reset your PASSWORD, then log-in."), ["in", "log", "password", "reset", "then", "your"]);
    }

    #[test]
    fn chinese_runs_become_overlapping_bigrams() {
        assert_eq!(tokens("如何重置密码"), ["何重", "如何", "密码", "置密", "重置"]);
        // A query phrase shares its bigrams with the document.
        let doc = tokens("忘记密码时，请点击登录页面的重置链接");
        assert!(tokens("重置密码").iter().filter(|t| doc.contains(t)).count() >= 2);
    }

    #[test]
    fn mixed_text_and_single_characters() {
        assert_eq!(tokens("VIP会员 退款"), ["vip", "会员", "退款"]);
        assert_eq!(tokens("卡"), ["卡"]);
        assert!(tokens("").is_empty() && tokens("!!! ...").is_empty());
    }
}
