//! Templates: what a valid one is, and rendering one for a customer.
//!
//! Texts use Jinja syntax, rendered by minijinja in a sandbox: no file or
//! network access, no includes, strict undefined values (a misspelt
//! variable is an error, never an empty string), a fuel limit on the steps a
//! render may take, a cap on the output, and HTML escaping of every value in
//! an email's HTML part (never in text, SMS or push, which are not HTML).
//!
//! A template sees two names: `customer` (the fields of
//! [`TemplateFields`](super::customer::TemplateFields)) and `vars` (the
//! sender's variables). *Locked* variables are the slots of a notice that the
//! sender must supply on each send and cannot change in the text — the
//! amount of an arrears notice, say; every content must use each of them.

use std::collections::{BTreeMap, BTreeSet};

use crm_kit::FieldViolation;
use minijinja::{
    AutoEscape, Environment, UndefinedBehavior,
    value::{Serde, Value},
};
use serde::{Deserialize, Serialize};

use super::{
    channel::Channel,
    customer::{TEMPLATE_FIELDS, TemplateFields},
    sms,
};

/// Locales per template.
pub const MAX_CONTENTS: usize = 20;
/// Steps one render may take (a loop over a long list runs out).
const FUEL: u64 = 100_000;
/// Largest rendered text.
const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Segments an SMS may be sent as.
pub const MAX_SMS_SEGMENTS: usize = 10;

/// The text of a template in one locale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub locale: String,
    pub subject: String,
    pub body: String,
    pub html_body: String,
    pub data: BTreeMap<String, String>,
}

/// A template as written: what Create and Update store once [`check`]ed.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateDraft {
    pub display_name: String,
    pub channel: Channel,
    pub purpose: super::channel::Purpose,
    pub contents: Vec<Content>,
    pub default_locale: String,
    pub locked_variables: Vec<String>,
}

/// The parts of a content that are templates, with the field name the API
/// uses for each and whether it is HTML.
fn parts(content: &Content) -> Vec<(String, &str, bool)> {
    let mut parts = vec![
        ("subject".to_owned(), content.subject.as_str(), false),
        ("body".to_owned(), content.body.as_str(), false),
        ("html_body".to_owned(), content.html_body.as_str(), true),
    ];
    parts.extend(content.data.iter().map(|(key, value)| (format!("data[{key}]"), value.as_str(), false)));
    parts.retain(|(_, source, _)| !source.is_empty());
    parts
}

/// The sandboxed engine: strict, fuelled, HTML-escaping only `.html` parts.
fn engine() -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    // The filters and tests templates may use; nothing that reaches outside.
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("title", minijinja::filters::title);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("default", minijinja::filters::default);
    env.add_filter("join", minijinja::filters::join);
    env.add_filter("length", minijinja::filters::length);
    env.add_filter("replace", minijinja::filters::replace);
    env.add_filter("round", minijinja::filters::round);
    env.add_filter("int", minijinja::filters::int);
    env.add_filter("float", minijinja::filters::float);
    env.add_filter("first", minijinja::filters::first);
    env.add_filter("last", minijinja::filters::last);
    env.add_filter("escape", minijinja::filters::escape);
    env.add_test("defined", minijinja::tests::is_defined);
    env.add_test("undefined", minijinja::tests::is_undefined);
    env
}

/// "line L, column C: message" of an engine error in `source`.
fn describe(err: &minijinja::Error, source: &str) -> String {
    let detail = err.detail().map_or_else(|| err.kind().to_string(), str::to_owned);
    match (err.line(), err.range()) {
        (Some(line), Some(range)) => {
            let start = range.start.min(source.len());
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            let column = source[line_start..start].chars().count() + 1;
            format!("line {line}, column {column}: {detail}")
        }
        (Some(line), None) => format!("line {line}: {detail}"),
        _ => detail,
    }
}

fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

/// Checks a draft: channel-specific required parts, sizes, locales, syntax
/// (with line and column), that every name used is `customer.<known field>`
/// or `vars.<name>`, and that every locked variable is used by every content.
/// Returns the sorted variables under `vars` the contents use, or every
/// violation found.
pub fn check(draft: &TemplateDraft, field: &str) -> Result<Vec<String>, Vec<FieldViolation>> {
    let mut v = Vec::new();
    let name_chars = draft.display_name.trim().chars().count();
    if name_chars == 0 || name_chars > 200 {
        v.push(FieldViolation::new(format!("{field}.display_name"), "INVALID_VALUE", "1-200 characters"));
    }
    if draft.contents.is_empty() || draft.contents.len() > MAX_CONTENTS {
        v.push(FieldViolation::new(format!("{field}.contents"), "INVALID_VALUE", format!("1-{MAX_CONTENTS} contents, one per locale")));
    }
    let mut locales = BTreeSet::new();
    for (i, content) in draft.contents.iter().enumerate() {
        let at = format!("{field}.contents[{i}]");
        if content.locale.is_empty() || content.locale.len() > 35 || !content.locale.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            v.push(FieldViolation::new(format!("{at}.locale"), "INVALID_LOCALE", "a BCP 47 tag such as \"zh-CN\" or \"en\""));
        } else if !locales.insert(content.locale.as_str()) {
            v.push(FieldViolation::new(format!("{at}.locale"), "DUPLICATE_LOCALE", format!("{:?} appears twice", content.locale)));
        }
        channel_shape(draft.channel, content, &at, &mut v);
    }
    if !draft.contents.iter().any(|c| c.locale == draft.default_locale) {
        v.push(FieldViolation::new(format!("{field}.default_locale"), "UNKNOWN_LOCALE", "must be the locale of one of the contents"));
    }
    for (i, name) in draft.locked_variables.iter().enumerate() {
        if !valid_variable_name(name) {
            v.push(FieldViolation::new(
                format!("{field}.locked_variables[{i}]"),
                "INVALID_VARIABLE_NAME",
                "lower-case letters, digits and _, starting with a letter or _, at most 64",
            ));
        }
    }

    let env = engine();
    let mut used_vars = BTreeSet::new();
    for (i, content) in draft.contents.iter().enumerate() {
        let mut content_vars = BTreeSet::new();
        let mut parsed = true;
        for (part, source, _) in parts(content) {
            let at = format!("{field}.contents[{i}].{part}");
            let template = match env.template_from_str(source) {
                Ok(t) => t,
                Err(err) => {
                    v.push(FieldViolation::new(at, "TEMPLATE_SYNTAX", describe(&err, source)));
                    parsed = false;
                    continue;
                }
            };
            for name in template.undeclared_variables(true) {
                let mut path = name.splitn(3, '.');
                match (path.next(), path.next()) {
                    (Some("vars"), Some(var)) => {
                        content_vars.insert(var.to_owned());
                    }
                    (Some("customer"), Some(f)) if TEMPLATE_FIELDS.contains(&f) => {}
                    (Some("links"), Some("unsubscribe")) => {}
                    _ => v.push(FieldViolation::new(
                        at.clone(),
                        "UNKNOWN_VARIABLE",
                        format!(
                            "{name:?} is neither customer.<field> (one of {}), vars.<name> nor links.unsubscribe",
                            TEMPLATE_FIELDS.join(", ")
                        ),
                    )),
                }
            }
        }
        // Whether a text that does not parse uses a variable is unknown: its syntax error is the one to fix.
        for locked in draft.locked_variables.iter().filter(|_| parsed) {
            if !content_vars.contains(locked) {
                v.push(FieldViolation::new(
                    format!("{field}.contents[{i}]"),
                    "LOCKED_VARIABLE_UNUSED",
                    format!("locked variable vars.{locked} must appear in the {} content", content.locale),
                ));
            }
        }
        used_vars.extend(content_vars);
    }
    if v.is_empty() { Ok(used_vars.into_iter().collect()) } else { Err(v) }
}

fn channel_shape(channel: Channel, c: &Content, at: &str, v: &mut Vec<FieldViolation>) {
    let mut refuse = |part: &str, reason: &'static str, description: &str| {
        v.push(FieldViolation::new(format!("{at}.{part}"), reason, description.to_owned()));
    };
    match channel {
        Channel::Email => {
            if c.subject.trim().is_empty() {
                refuse("subject", "REQUIRED", "an email needs a subject");
            }
            if c.body.trim().is_empty() && c.html_body.trim().is_empty() {
                refuse("body", "REQUIRED", "an email needs a text body, an HTML body or both");
            }
            if !c.data.is_empty() {
                refuse("data", "NOT_FOR_CHANNEL", "data is for push templates");
            }
        }
        Channel::Sms => {
            if c.body.trim().is_empty() {
                refuse("body", "REQUIRED", "an SMS needs a body");
            }
            if !c.subject.is_empty() || !c.html_body.is_empty() || !c.data.is_empty() {
                refuse("subject", "NOT_FOR_CHANNEL", "an SMS has only a body");
            }
        }
        Channel::Push => {
            if c.subject.trim().is_empty() || c.body.trim().is_empty() {
                refuse("body", "REQUIRED", "a push needs a title (subject) and a body");
            }
            if !c.html_body.is_empty() {
                refuse("html_body", "NOT_FOR_CHANNEL", "html_body is for email templates");
            }
            if c.data.len() > 20 {
                refuse("data", "TOO_MANY", "at most 20 data entries");
            }
        }
    }
    if c.subject.chars().count() > 998 {
        refuse("subject", "TOO_LONG", "at most 998 characters");
    }
    if c.body.len() > 100_000 || c.html_body.len() > 500_000 || c.data.values().map(String::len).sum::<usize>() > 4_000 {
        refuse("body", "TOO_LONG", "body at most 100 000 bytes, html_body 500 000, data 4 000");
    }
}

/// One text rendered for one customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The locale chosen.
    pub locale: String,
    pub subject: String,
    pub body: String,
    pub html_body: String,
    pub data: BTreeMap<String, String>,
}

/// Something that stops or spoils a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// "contents[zh-CN].body", "variables.amount", "customer".
    pub field: String,
    /// UPPER_SNAKE reason.
    pub reason: &'static str,
    pub description: String,
}

/// The content for `wanted` (a BCP 47 tag, may be empty): the exact locale,
/// else the same language ("zh-TW" → "zh", "zh" → "zh-CN"), else the default.
pub fn choose_locale<'a>(draft: &'a TemplateDraft, wanted: &str) -> &'a Content {
    let language = |tag: &str| tag.split('-').next().unwrap_or_default().to_ascii_lowercase();
    let exact = draft.contents.iter().find(|c| c.locale.eq_ignore_ascii_case(wanted));
    let same_language = || draft.contents.iter().find(|c| !wanted.is_empty() && language(&c.locale) == language(wanted));
    let default = || draft.contents.iter().find(|c| c.locale == draft.default_locale);
    exact.or_else(same_language).or_else(default).or(draft.contents.first()).expect("a checked template has a content")
}

/// The values a message's slots take, for providers that send approved
/// templates with parameters instead of text (Aliyun SMS): the sender's
/// variables, and the customer's display name as `name` unless a variable
/// has that name.
pub fn slot_values(vars: &BTreeMap<String, String>, customer: Option<&TemplateFields>) -> BTreeMap<String, String> {
    let mut values = vars.clone();
    if let Some(c) = customer {
        values.entry("name".to_owned()).or_insert_with(|| c.display_name.clone());
    }
    values
}

/// Renders `draft` in `locale` (empty: the customer's, else the default)
/// for `customer` (None: no `customer.*`) with `vars`, and
/// `links.unsubscribe` as `unsubscribe_url` (empty when the message has no
/// link: transactional, a preview, no public URL). Every part is rendered
/// even when another fails, so that all problems are reported at once.
pub fn render(
    draft: &TemplateDraft,
    locale: &str,
    customer: Option<&TemplateFields>,
    vars: &BTreeMap<String, String>,
    unsubscribe_url: Option<&str>,
) -> (Rendered, Vec<Problem>) {
    let mut problems = Vec::new();
    for locked in &draft.locked_variables {
        if vars.get(locked).is_none_or(|value| value.trim().is_empty()) {
            problems.push(Problem {
                field: format!("variables.{locked}"),
                reason: "MISSING_LOCKED_VARIABLE",
                description: format!("the template requires vars.{locked} on every send"),
            });
        }
    }
    let wanted = if locale.is_empty() { customer.map_or("", |c| c.locale.as_str()) } else { locale };
    let content = choose_locale(draft, wanted);
    let used: BTreeSet<String> = {
        let env = engine();
        parts(content)
            .iter()
            .filter_map(|(_, source, _)| env.template_from_str(source).ok())
            .flat_map(|t| t.undeclared_variables(true))
            .filter_map(|name| name.strip_prefix("vars.").map(|v| v.split('.').next().unwrap_or(v).to_owned()))
            .collect()
    };
    for name in vars.keys().filter(|name| !used.contains(*name) && !draft.locked_variables.contains(name)) {
        problems.push(Problem {
            field: format!("variables.{name}"),
            reason: "UNKNOWN_VARIABLE",
            description: format!("the {} content does not use vars.{name}", content.locale),
        });
    }
    if customer.is_none() && used_customer(content) {
        problems.push(Problem {
            field: "customer".into(),
            reason: "CUSTOMER_REQUIRED",
            description: "the template uses customer fields; name a customer".into(),
        });
    }

    let mut context = BTreeMap::new();
    context.insert("vars", Value::from(Serde(vars)));
    context.insert("links", Value::from(Serde(BTreeMap::from([("unsubscribe", unsubscribe_url.unwrap_or_default())]))));
    if let Some(fields) = customer {
        context.insert("customer", Value::from(Serde(fields)));
    }
    let context = Value::from(Serde(&context));
    let env = engine();
    let mut out = Rendered { locale: content.locale.clone(), ..Rendered::default() };
    for (part, source, html) in parts(content) {
        let name = if html { "part.html" } else { "part.txt" };
        let text = match env.template_from_named_str(name, source).and_then(|t| t.render(&context)) {
            Ok(text) if text.len() > MAX_OUTPUT_BYTES => {
                problems.push(Problem {
                    field: format!("contents[{}].{part}", content.locale),
                    reason: "OUTPUT_TOO_LONG",
                    description: format!("renders to more than {MAX_OUTPUT_BYTES} bytes"),
                });
                continue;
            }
            Ok(text) => text,
            Err(err) => {
                let reason = match err.kind() {
                    minijinja::ErrorKind::UndefinedError => "UNDEFINED_VARIABLE",
                    minijinja::ErrorKind::OutOfFuel => "TOO_MUCH_WORK",
                    _ => "RENDER_FAILED",
                };
                problems.push(Problem {
                    field: format!("contents[{}].{part}", content.locale),
                    reason,
                    description: describe(&err, source),
                });
                continue;
            }
        };
        match part.as_str() {
            "subject" => out.subject = text,
            "body" => out.body = text,
            "html_body" => out.html_body = text,
            data => {
                let key = data.trim_start_matches("data[").trim_end_matches(']').to_owned();
                out.data.insert(key, text);
            }
        }
    }
    if draft.channel == Channel::Sms && sms::measure(&out.body).segments > MAX_SMS_SEGMENTS {
        problems.push(Problem {
            field: format!("contents[{}].body", content.locale),
            reason: "TOO_MANY_SEGMENTS",
            description: format!("the text is {} SMS segments; at most {MAX_SMS_SEGMENTS}", sms::measure(&out.body).segments),
        });
    }
    (out, problems)
}

fn used_customer(content: &Content) -> bool {
    let env = engine();
    parts(content)
        .iter()
        .filter_map(|(_, source, _)| env.template_from_str(source).ok())
        .any(|t| t.undeclared_variables(false).contains("customer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channel::Purpose;

    fn arrears_notice() -> TemplateDraft {
        TemplateDraft {
            display_name: "Arrears notice".into(),
            channel: Channel::Sms,
            purpose: Purpose::Transactional,
            contents: vec![
                Content {
                    locale: "zh-CN".into(),
                    body: "{{ customer.display_name }}您好，您的物业费欠费{{ vars.amount }}元，请尽快缴纳。".into(),
                    ..Content::default()
                },
                Content {
                    locale: "en".into(),
                    body: "Dear {{ customer.display_name }}, you owe {{ vars.amount }}.".into(),
                    ..Content::default()
                },
            ],
            default_locale: "zh-CN".into(),
            locked_variables: vec!["amount".into()],
        }
    }

    fn customer(locale: &str) -> TemplateFields {
        TemplateFields { display_name: "李雷".into(), locale: locale.into(), ..TemplateFields::default() }
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_valid_template_lists_the_variables_it_uses() {
        assert_eq!(check(&arrears_notice(), "template").unwrap(), vec!["amount".to_owned()]);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let mut t = arrears_notice();
        t.contents[1].body = "Dear {{ customer.display_name }},\nyou owe {{ vars.amount }.".into();
        let v = check(&t, "template").unwrap_err();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "template.contents[1].body");
        assert_eq!(v[0].reason, "TEMPLATE_SYNTAX");
        assert!(v[0].description.starts_with("line 2, column "), "{}", v[0].description);
    }

    #[test]
    fn unknown_names_are_refused_on_save() {
        let mut t = arrears_notice();
        t.contents[1].body = "Hi {{ customr.name }} {{ customer.nickname }} {{ vars.amount }}".into();
        let reasons: Vec<_> = check(&t, "t").unwrap_err().into_iter().map(|v| (v.field, v.reason)).collect();
        assert_eq!(
            reasons,
            vec![("t.contents[1].body".to_owned(), "UNKNOWN_VARIABLE"), ("t.contents[1].body".to_owned(), "UNKNOWN_VARIABLE")]
        );
    }

    #[test]
    fn a_locked_variable_must_appear_in_every_content() {
        let mut t = arrears_notice();
        t.contents[1].body = "Dear {{ customer.display_name }}, please pay.".into();
        let v = check(&t, "template").unwrap_err();
        assert_eq!((v[0].field.as_str(), v[0].reason), ("template.contents[1]", "LOCKED_VARIABLE_UNUSED"));
    }

    #[test]
    fn channel_shapes_are_enforced() {
        let mut t = arrears_notice();
        t.contents[0].subject = "hi".into();
        t.default_locale = "fr".into();
        let reasons: Vec<_> = check(&t, "t").unwrap_err().into_iter().map(|v| v.reason).collect();
        assert_eq!(reasons, vec!["NOT_FOR_CHANNEL", "UNKNOWN_LOCALE"]);
    }

    #[test]
    fn renders_in_the_customers_locale_with_fallback() {
        let t = arrears_notice();
        let (out, problems) = render(&t, "", Some(&customer("en-GB")), &vars(&[("amount", "328.00")]), None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((out.locale.as_str(), out.body.as_str()), ("en", "Dear 李雷, you owe 328.00."));
        let (out, _) = render(&t, "", Some(&customer("fr")), &vars(&[("amount", "328.00")]), None);
        assert_eq!(out.locale, "zh-CN", "no French content: the default");
        let (out, _) = render(&t, "zh", None, &vars(&[("amount", "1")]), None);
        assert_eq!(out.locale, "zh-CN");
    }

    #[test]
    fn a_missing_locked_variable_or_an_unknown_one_is_a_problem() {
        let (_, problems) = render(&arrears_notice(), "en", Some(&customer("en")), &vars(&[("amuont", "328")]), None);
        let reasons: Vec<_> = problems.iter().map(|p| (p.field.as_str(), p.reason)).collect();
        assert!(reasons.contains(&("variables.amount", "MISSING_LOCKED_VARIABLE")), "{reasons:?}");
        assert!(reasons.contains(&("variables.amuont", "UNKNOWN_VARIABLE")), "{reasons:?}");
        assert!(reasons.contains(&("contents[en].body", "UNDEFINED_VARIABLE")), "strict undefined: {reasons:?}");
    }

    #[test]
    fn html_parts_escape_values_and_text_parts_do_not() {
        let t = TemplateDraft {
            display_name: "Welcome".into(),
            channel: Channel::Email,
            purpose: Purpose::Marketing,
            contents: vec![Content {
                locale: "en".into(),
                subject: "Hello {{ vars.name }}".into(),
                body: "Hello {{ vars.name }}".into(),
                html_body: "<p>Hello {{ vars.name }}</p>".into(),
                ..Content::default()
            }],
            default_locale: "en".into(),
            locked_variables: vec![],
        };
        let (out, problems) = render(&t, "", None, &vars(&[("name", "<b>Tom & Jerry</b>")]), None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out.body, "Hello <b>Tom & Jerry</b>");
        assert_eq!(out.html_body, "<p>Hello &lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;</p>");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let t = TemplateDraft {
            contents: vec![Content {
                locale: "en".into(),
                body: "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}".into(),
                ..Content::default()
            }],
            default_locale: "en".into(),
            ..arrears_notice()
        };
        let t = TemplateDraft { locked_variables: vec![], ..t };
        let (_, problems) = render(&t, "", None, &BTreeMap::new(), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(matches!(problems[0].reason, "TOO_MUCH_WORK" | "RENDER_FAILED"), "{problems:?}");
    }

    #[test]
    fn long_sms_texts_are_a_problem() {
        let mut t = arrears_notice();
        t.contents[1].body = "{{ vars.amount }}".into();
        let (_, problems) = render(&t, "en", None, &vars(&[("amount", &"x".repeat(1600))]), None);
        assert_eq!(problems.iter().map(|p| p.reason).collect::<Vec<_>>(), vec!["TOO_MANY_SEGMENTS"]);
    }

    #[test]
    fn links_unsubscribe_is_a_known_name_and_renders_the_messages_link() {
        let mut t = arrears_notice();
        t.locked_variables.clear();
        t.contents = vec![Content { locale: "en".into(), body: "Leave: {{ links.unsubscribe }}".into(), ..Content::default() }];
        t.default_locale = "en".into();
        assert!(check(&t, "t").is_ok(), "{:?}", check(&t, "t"));
        let (out, problems) = render(&t, "", None, &BTreeMap::new(), Some("https://crm.example/v1/unsubscribeLinks/abc:unsubscribe"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out.body, "Leave: https://crm.example/v1/unsubscribeLinks/abc:unsubscribe");
        let (out, problems) = render(&t, "", None, &BTreeMap::new(), None);
        assert!(problems.is_empty() && out.body == "Leave: ", "no link, no error: {out:?}");
    }
}
