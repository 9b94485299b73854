//! Duplicate detection: the match keys a customer is found by (normalised
//! emails and phones, and two keys of each name that Chinese and Latin names
//! share), and how alike two customers are, with why.
//!
//! Names become tokens: each Chinese character its toneless pinyin
//! syllable, each Latin word itself, lower-cased; the tokens sorted make the
//! name key, so 张伟, 章伟 (same sound, other characters), "Zhang Wei" and
//! "Wei Zhang" share one. The letters of each token sorted make a second key
//! that survives a swapped pair of letters ("Jonh Smith").

use pinyin::ToPinyin;

/// What duplicate detection compares of a customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    /// The display name, and family + given name where they say more.
    pub names: Vec<String>,
    /// Email addresses as stored (lower-case).
    pub emails: Vec<String>,
    /// E.164 phone numbers.
    pub phones: Vec<String>,
    pub company: String,
}

impl Person {
    /// What is compared of a customer with these fields.
    pub fn of<'a>(
        display_name: &str,
        given_name: &str,
        family_name: &str,
        emails: impl Iterator<Item = &'a str>,
        phones: impl Iterator<Item = &'a str>,
        company: &str,
    ) -> Self {
        let mut names = vec![display_name.to_owned()];
        let full = format!("{family_name} {given_name}");
        if !full.trim().is_empty() && name_key(&name_tokens(&full)) != name_key(&name_tokens(display_name)) {
            names.push(full.trim().to_owned());
        }
        Self {
            names,
            emails: emails.map(str::to_owned).collect(),
            phones: phones.map(str::to_owned).collect(),
            company: company.to_owned(),
        }
    }

    /// A customer draft's.
    pub fn of_draft(d: &super::customer::CustomerDraft) -> Self {
        Self::of(
            &d.display_name,
            &d.given_name,
            &d.family_name,
            d.emails.iter().map(|e| e.address.as_str()),
            d.phones.iter().map(|p| p.number.as_str()),
            &d.company,
        )
    }
}

/// Why two customers look alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    /// An email address equal once normalised (case, `+tags`, Gmail dots).
    Email,
    /// The same phone number.
    Phone,
    /// The same name (characters or letters, word order aside).
    Name,
    /// Names that sound the same in pinyin but are written differently.
    NamePinyin,
    /// Names alike but not the same (a typo, a letter swapped).
    NameSimilar,
    /// The same company, legal-form suffixes aside.
    Company,
}

impl Signal {
    /// Its name on the wire (`MatchSignal` without the prefix) and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::Name => "NAME",
            Self::NamePinyin => "NAME_PINYIN",
            Self::NameSimilar => "NAME_SIMILAR",
            Self::Company => "COMPANY",
        }
    }

    /// What a signal adds to the score: a shared email or phone is strong
    /// alone; a name is common, so it needs a company or a contact beside it.
    fn weight(self) -> f64 {
        match self {
            Self::Email => 0.6,
            Self::Phone => 0.5,
            Self::Name => 0.35,
            // A homophone is the typo a pinyin input method makes: as good as the same name.
            Self::NamePinyin => 0.35,
            Self::NameSimilar => 0.3,
            Self::Company => 0.15,
        }
    }
}

/// How alike two customers are: a score in (0, 1] and its signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Likeness {
    pub score: f64,
    pub signals: Vec<Signal>,
}

/// The keys a pair scoring from 0.45 shares (an email, a phone, or a name
/// with the company): what the scan looks up.
pub fn strong_keys(keys: &[String]) -> Vec<String> {
    keys.iter().filter(|k| !k.starts_with("n:") && !k.starts_with("s:")).cloned().collect()
}

/// The score from which a pair is reported unless the caller asks otherwise.
pub const DEFAULT_MIN_SCORE: f64 = 0.5;
/// Jaro-Winkler similarity of two name keys from which they count as alike.
const SIMILAR_NAMES: f64 = 0.92;

/// The keys a customer is found by, sorted and without repeats: `e:`
/// emails, `p:` phones, `n:`/`s:` the name's two keys, and `nc:`/`sc:` those
/// with the company — what a pair scoring from 0.45 always shares, so that
/// the scan looks up those (a name alone is shared by hundreds).
pub fn match_keys(person: &Person) -> Vec<String> {
    let mut keys: Vec<String> = person.emails.iter().filter_map(|e| normal_email(e)).map(|e| format!("e:{e}")).collect();
    keys.extend(person.phones.iter().filter(|p| !p.is_empty()).map(|p| format!("p:{p}")));
    let company = company_key(&person.company);
    for name in &person.names {
        let tokens = name_tokens(name);
        if tokens.is_empty() {
            continue;
        }
        let (name, letters) = (name_key(&tokens), letters_key(&tokens));
        if !company.is_empty() {
            keys.push(format!("nc:{name}|{company}"));
            keys.push(format!("sc:{letters}|{company}"));
        }
        keys.push(format!("n:{name}"));
        keys.push(format!("s:{letters}"));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// How alike `a` and `b` are; None when nothing but (at most) the company is shared.
pub fn likeness(a: &Person, b: &Person) -> Option<Likeness> {
    let mut signals = Vec::new();
    let emails = |p: &Person| p.emails.iter().filter_map(|e| normal_email(e)).collect::<Vec<_>>();
    let b_emails = emails(b);
    if emails(a).iter().any(|e| b_emails.contains(e)) {
        signals.push(Signal::Email);
    }
    if a.phones.iter().any(|p| !p.is_empty() && b.phones.contains(p)) {
        signals.push(Signal::Phone);
    }
    if let Some(name) = name_signal(a, b) {
        signals.push(name);
    }
    if signals.is_empty() {
        return None;
    }
    let company = company_key(&a.company);
    if !company.is_empty() && company == company_key(&b.company) {
        signals.push(Signal::Company);
    }
    let score = signals.iter().map(|s| s.weight()).sum::<f64>().min(1.0);
    Some(Likeness { score, signals })
}

/// The strongest name signal between any name of `a` and any of `b`.
fn name_signal(a: &Person, b: &Person) -> Option<Signal> {
    let mut best: Option<Signal> = None;
    for x in &a.names {
        for y in &b.names {
            let (tx, ty) = (name_tokens(x), name_tokens(y));
            if tx.is_empty() || ty.is_empty() {
                continue;
            }
            let signal = if name_key(&tx) == name_key(&ty) {
                if has_han(x) && has_han(y) && written(x) != written(y) { Signal::NamePinyin } else { Signal::Name }
            } else if letters_key(&tx) == letters_key(&ty) || strsim::jaro_winkler(&name_key(&tx), &name_key(&ty)) >= SIMILAR_NAMES {
                Signal::NameSimilar
            } else {
                continue;
            };
            // Signals are ordered strongest first.
            best = Some(best.map_or(signal, |b| b.min(signal)));
        }
    }
    best
}

/// An address with case, a `+tag` and (at Gmail) dots taken out; None if it is not one.
pub fn normal_email(address: &str) -> Option<String> {
    let address = address.trim().to_lowercase();
    let (local, domain) = address.rsplit_once('@')?;
    let local = local.split('+').next().unwrap_or(local);
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        _ => (local.to_owned(), domain),
    };
    (!local.is_empty() && !domain.is_empty()).then(|| format!("{local}@{domain}"))
}

/// The name's tokens: a toneless pinyin syllable per Chinese character, a
/// lower-case word per run of other letters and digits.
fn name_tokens(name: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in name.chars() {
        if let Some(syllable) = c.to_pinyin() {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            tokens.push(syllable.plain().to_owned());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// The tokens in order, so that word order does not matter.
fn name_key(tokens: &[String]) -> String {
    let mut sorted = tokens.to_vec();
    sorted.sort();
    sorted.join(" ")
}

/// The letters of each token in order, then the tokens: a swapped pair of letters does not matter.
fn letters_key(tokens: &[String]) -> String {
    let mut sorted: Vec<String> = tokens
        .iter()
        .map(|t| {
            let mut letters: Vec<char> = t.chars().collect();
            letters.sort_unstable();
            letters.into_iter().collect()
        })
        .collect();
    sorted.sort();
    sorted.join(" ")
}

fn has_han(name: &str) -> bool {
    name.chars().any(|c| c.to_pinyin().is_some())
}

/// The name as written, without spaces or case.
fn written(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// Legal-form words that do not tell companies apart.
const LEGAL_FORMS: &[&str] = &[
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "集团",
    "公司",
    "incorporated",
    "corporation",
    "company",
    "limited",
    "gmbh",
    "corp",
    "inc",
    "ltd",
    "llc",
    "plc",
    "co",
    "ag",
    "sa",
];

/// The company's name without case, punctuation or legal form; empty if none.
pub fn company_key(company: &str) -> String {
    let mut words: Vec<String> =
        company.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect();
    while let Some(last) = words.last_mut() {
        if LEGAL_FORMS.contains(&last.as_str()) {
            words.pop();
            continue;
        }
        // Chinese names run the legal form on without a space: 华为技术有限公司.
        match LEGAL_FORMS
            .iter()
            .find(|form| form.chars().all(|c| c.to_pinyin().is_some()) && last.ends_with(**form) && last.len() > form.len())
        {
            Some(form) => last.truncate(last.len() - form.len()),
            None => break,
        }
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str, email: &str, phone: &str, company: &str) -> Person {
        Person {
            names: vec![name.to_owned()],
            emails: if email.is_empty() { vec![] } else { vec![email.to_owned()] },
            phones: if phone.is_empty() { vec![] } else { vec![phone.to_owned()] },
            company: company.to_owned(),
        }
    }

    #[test]
    fn chinese_and_latin_names_share_keys_by_sound_and_word_order() {
        let keys = |name: &str| match_keys(&person(name, "", "", ""));
        assert_eq!(keys("张伟"), ["n:wei zhang", "s:aghnz eiw"]);
        let at_work = match_keys(&person("张伟", "", "", "华为技术有限公司"));
        assert_eq!(at_work, ["n:wei zhang", "nc:wei zhang|华为技术", "s:aghnz eiw", "sc:aghnz eiw|华为技术"]);
        assert_eq!(strong_keys(&at_work), ["nc:wei zhang|华为技术", "sc:aghnz eiw|华为技术"]);
        assert_eq!(keys("张伟"), keys("章伟"), "same sound, other characters");
        assert_eq!(keys("张伟"), keys("Zhang Wei"));
        assert_eq!(keys("张伟"), keys("WEI, zhang"));
        assert_eq!(keys("Jonh Smith")[1], keys("John Smith")[1], "a swapped pair of letters keeps the letters key");
        assert_ne!(keys("李娜"), keys("张伟"));
    }

    #[test]
    fn emails_are_compared_as_their_owners_use_them() {
        assert_eq!(normal_email("Ann.Lee+shop@GMail.com").as_deref(), Some("annlee@gmail.com"));
        assert_eq!(normal_email("ann.lee+shop@example.com").as_deref(), Some("ann.lee@example.com"));
        assert_eq!(normal_email("not-an-address"), None);
        assert_eq!(normal_email("+x@example.com"), None);
    }

    #[test]
    fn companies_are_compared_without_their_legal_form() {
        assert_eq!(company_key("Acme, Inc."), "acme");
        assert_eq!(company_key("ACME Co Ltd"), "acme");
        assert_eq!(company_key("华为技术有限公司"), "华为技术");
        assert_eq!(company_key("华为技术 有限公司"), "华为技术");
        assert_eq!(company_key("Ltd"), "");
    }

    #[test]
    fn pairs_score_by_what_they_share_and_say_why() {
        let base = person("张伟", "zhang.wei@gmail.com", "+8613800000001", "华为技术有限公司");
        let same_email = person("Wei Zhang", "zhangwei+crm@gmail.com", "", "");
        let found = likeness(&base, &same_email).unwrap();
        assert_eq!(found.signals, [Signal::Email, Signal::Name]);
        assert!((found.score - 0.95).abs() < 1e-9);

        let homophone_at_work = person("章伟", "", "", "华为技术");
        let found = likeness(&base, &homophone_at_work).unwrap();
        assert_eq!(found.signals, [Signal::NamePinyin, Signal::Company]);
        assert!((found.score - DEFAULT_MIN_SCORE).abs() < 1e-9, "reported by default");

        let phone_only = person("Someone Else", "", "+8613800000001", "");
        assert_eq!(likeness(&base, &phone_only).unwrap().signals, [Signal::Phone]);

        let typo = person("Jonh Smith", "", "", "Acme Inc");
        let found = likeness(&person("John Smith", "", "", "ACME"), &typo).unwrap();
        assert_eq!(found.signals, [Signal::NameSimilar, Signal::Company]);
        assert!(found.score < DEFAULT_MIN_SCORE, "a near name at the same company is shown only when asked for");

        assert_eq!(likeness(&base, &person("李娜", "li@example.com", "", "华为技术有限公司")), None, "a shared company alone is no match");
        let all = likeness(&base, &person("张伟", "zhangwei@gmail.com", "+8613800000001", "华为")).unwrap();
        assert_eq!(all.score, 1.0);
    }
}
