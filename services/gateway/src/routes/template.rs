//! `google.api.http` path templates: parsing and matching, pure.
//!
//! Grammar (from `google/api/http.proto`):
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//! `{name}` is short for `{name=*}`; `**` matches the rest of the path and
//! may only come last.

use std::fmt;

use percent_encoding::percent_decode_str;

/// One segment of a template once variables are flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the (percent-decoded) request segment.
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Any,
    /// `**`: zero or more segments, only last.
    Rest,
}

/// A variable: the request field it fills and the segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Field path in the request message, e.g. `["customer", "name"]`.
    pub field_path: Vec<String>,
    /// First segment index (inclusive).
    start: usize,
    /// Last segment index (exclusive).
    end: usize,
}

impl Variable {
    /// The segments the variable spans, as indices into [`PathTemplate::segments`].
    pub fn span(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// Path variables bound by a match: (field path, decoded value), in path order.
pub type Bindings = Vec<(Vec<String>, String)>;

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    raw: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// Why a template does not parse (a broken proto annotation: start-up fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

impl PathTemplate {
    /// Parses `raw`, e.g. `/v1/{name=customers/*}:undelete`.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let fail = |reason| TemplateError { template: raw.to_owned(), reason };
        let rest = raw.strip_prefix('/').ok_or_else(|| fail("must start with '/'"))?;
        // The verb is a ':' after the last '/' and outside any variable.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let last_close = rest.rfind('}').map_or(0, |i| i + 1);
        let tail_start = last_slash.max(last_close);
        let (path, verb) = match rest[tail_start..].find(':') {
            Some(i) => {
                let verb = &rest[tail_start + i + 1..];
                if verb.is_empty() || verb.contains(['/', '{', '}', '*', ':']) {
                    return Err(fail("invalid custom verb"));
                }
                (&rest[..tail_start + i], Some(verb.to_owned()))
            }
            None => (rest, None),
        };
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = path;
        loop {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner.find('}').ok_or_else(|| fail("unclosed '{'"))?;
                let body = &inner[..close];
                let (field, pattern) = body.split_once('=').unwrap_or((body, "*"));
                let field_path: Vec<String> = field.split('.').map(str::to_owned).collect();
                if field_path.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
                    return Err(fail("invalid field path in a variable"));
                }
                let start = segments.len();
                for part in pattern.split('/') {
                    segments.push(parse_plain_segment(part).ok_or_else(|| fail("invalid segment in a variable"))?);
                }
                if variables.iter().any(|v: &Variable| v.field_path == field_path) {
                    return Err(fail("a field is bound twice"));
                }
                variables.push(Variable { field_path, start, end: segments.len() });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let part = &chars[..end];
                if part.contains(['{', '}']) {
                    return Err(fail("a variable must be a whole segment"));
                }
                segments.push(parse_plain_segment(part).ok_or_else(|| fail("empty or invalid segment"))?);
                chars = &chars[end..];
            }
            match chars.strip_prefix('/') {
                Some(next) => chars = next,
                None if chars.is_empty() => break,
                None => return Err(fail("a variable must be followed by '/' or the end")),
            }
        }
        if segments.iter().rev().skip(1).any(|s| *s == Segment::Rest) {
            return Err(fail("'**' may only be the last segment"));
        }
        Ok(Self { raw: raw.to_owned(), segments, variables, verb })
    }

    /// The template as written in the proto.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The custom verb (`undelete` in `…:undelete`), if any.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The variables in path order (what OpenAPI generation lists as path parameters).
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The flattened segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// How specific the template is: literal segments (and a verb) outrank wildcards
    /// when two templates match the same path.
    pub fn specificity(&self) -> usize {
        2 * self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count() + usize::from(self.verb.is_some())
    }

    /// Matches a raw (still percent-encoded) request path; on success returns
    /// each variable's field path with its decoded value.
    pub fn matches(&self, path: &str) -> Option<Bindings> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut consumed = 0;
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(lit) => {
                    let part = parts.get(i)?;
                    if percent_decode_str(part).decode_utf8().ok()? != lit.as_str() {
                        return None;
                    }
                    consumed = i + 1;
                }
                Segment::Any => {
                    if parts.get(i)?.is_empty() {
                        return None;
                    }
                    consumed = i + 1;
                }
                Segment::Rest => consumed = parts.len(),
            }
        }
        if consumed != parts.len() {
            return None;
        }
        let mut bound = Vec::with_capacity(self.variables.len());
        for var in &self.variables {
            let end = if self.segments[var.end - 1] == Segment::Rest { parts.len() } else { var.end };
            let spanned = &parts[var.start..end];
            let value = if var.end - var.start == 1 && self.segments[var.start] == Segment::Any {
                percent_decode_str(spanned[0]).decode_utf8().ok()?.into_owned()
            } else {
                // Multi-segment values keep an encoded '/' encoded so that it
                // cannot be confused with a separator.
                let mut decoded = Vec::with_capacity(spanned.len());
                for part in spanned {
                    decoded.push(percent_decode_str(part).decode_utf8().ok()?.replace('/', "%2F"));
                }
                decoded.join("/")
            };
            bound.push((var.field_path.clone(), value));
        }
        Some(bound)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn parse_plain_segment(part: &str) -> Option<Segment> {
    match part {
        "" => None,
        "*" => Some(Segment::Any),
        "**" => Some(Segment::Rest),
        lit if lit.contains(['*', '{', '}', ':', '=']) => None,
        lit => Some(Segment::Literal(lit.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bound(t: &str, path: &str) -> Option<Vec<(String, String)>> {
        PathTemplate::parse(t).unwrap().matches(path).map(|v| v.into_iter().map(|(f, v)| (f.join("."), v)).collect())
    }

    fn pair(f: &str, v: &str) -> (String, String) {
        (f.to_owned(), v.to_owned())
    }

    #[test]
    fn literal_templates_match_only_themselves() {
        assert_eq!(bound("/v1/customers", "/v1/customers"), Some(vec![]));
        assert_eq!(bound("/v1/customers", "/v1/customers/"), None);
        assert_eq!(bound("/v1/customers", "/v1/customer"), None);
        assert_eq!(bound("/v1/customers", "/v1/customers/x"), None);
    }

    #[test]
    fn variables_bind_the_segments_they_span() {
        assert_eq!(bound("/v1/{name=customers/*}", "/v1/customers/abc"), Some(vec![pair("name", "customers/abc")]));
        assert_eq!(bound("/v1/{name=customers/*}", "/v1/tickets/abc"), None);
        assert_eq!(bound("/v1/{name=customers/*}", "/v1/customers/"), None);
        assert_eq!(bound("/v1/{ticket.name=tickets/*}", "/v1/tickets/t1"), Some(vec![pair("ticket.name", "tickets/t1")]));
        assert_eq!(bound("/v1/{parent=tickets/*}/comments", "/v1/tickets/t1/comments"), Some(vec![pair("parent", "tickets/t1")]));
        assert_eq!(bound("/v1/{name=teams/*/members/*}", "/v1/teams/a/members/b"), Some(vec![pair("name", "teams/a/members/b")]));
        assert_eq!(bound("/v1/shelves/{shelf}/books/{book}", "/v1/shelves/s/books/b"), Some(vec![pair("shelf", "s"), pair("book", "b")]));
    }

    #[test]
    fn custom_verbs_are_required_and_stripped() {
        let t = "/v1/{name=customers/*}:undelete";
        assert_eq!(PathTemplate::parse(t).unwrap().verb(), Some("undelete"));
        assert_eq!(bound(t, "/v1/customers/abc:undelete"), Some(vec![pair("name", "customers/abc")]));
        assert_eq!(bound(t, "/v1/customers/abc"), None);
        assert_eq!(bound(t, "/v1/customers/abc:delete"), None);
        assert_eq!(bound("/v1/customers:batchGet", "/v1/customers:batchGet"), Some(vec![]));
        assert_eq!(bound("/v1/customers:batchGet", "/v1/customers"), None);
    }

    #[test]
    fn values_are_percent_decoded() {
        assert_eq!(bound("/v1/{name=customers/*}", "/v1/customers/a%20b"), Some(vec![pair("name", "customers/a b")]));
        assert_eq!(bound("/v1/{id}", "/v1/a%2Fb"), Some(vec![pair("id", "a/b")]));
        assert_eq!(bound("/v1/{name=files/**}", "/v1/files/a/b%2Fc"), Some(vec![pair("name", "files/a/b%2Fc")]));
        assert_eq!(bound("/v1/{id}", "/v1/%FF"), None, "invalid UTF-8 does not match");
    }

    #[test]
    fn double_wildcard_takes_the_rest() {
        assert_eq!(bound("/v1/{name=files/**}", "/v1/files/a/b/c"), Some(vec![pair("name", "files/a/b/c")]));
        assert_eq!(bound("/v1/{name=files/**}", "/v1/files"), Some(vec![pair("name", "files")]));
        assert!(PathTemplate::parse("/v1/**/x").is_err());
    }

    #[test]
    fn malformed_templates_are_rejected() {
        for t in ["v1/x", "/v1//x", "/v1/{name", "/v1/{name=}", "/v1/{}", "/v1/a{b}", "/v1/x:", "/v1/{a}/{a}", "/v1/{a.}", "/v1/{a}x"] {
            assert!(PathTemplate::parse(t).is_err(), "{t} should be rejected");
        }
    }

    #[test]
    fn literal_segments_are_more_specific_than_wildcards() {
        let lit = PathTemplate::parse("/v1/customers:batchGet").unwrap();
        let var = PathTemplate::parse("/v1/{name=*}").unwrap();
        assert!(lit.specificity() > var.specificity());
    }

    proptest! {
        /// Any id generated into a name template comes back out.
        #[test]
        fn generated_names_round_trip(collection in "[a-z][a-zA-Z]{0,10}", id in "[A-Za-z0-9._~ %/-]{1,20}", verb in proptest::option::of("[a-z][a-zA-Z]{0,8}")) {
            let template = format!("/v1/{{name={collection}/*}}{}", verb.as_ref().map(|v| format!(":{v}")).unwrap_or_default());
            let t = PathTemplate::parse(&template).unwrap();
            let encoded: String = percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC).collect();
            let path = format!("/v1/{collection}/{encoded}{}", verb.as_ref().map(|v| format!(":{v}")).unwrap_or_default());
            // A multi-segment variable keeps an encoded '/' encoded.
            prop_assert_eq!(t.matches(&path), Some(vec![(vec!["name".to_owned()], format!("{collection}/{}", id.replace('/', "%2F")))]));
        }

        /// Matching never panics, whatever the path.
        #[test]
        fn arbitrary_paths_never_panic(path in "/[a-z0-9/:%{}*]{0,30}") {
            for t in ["/v1/{name=customers/*}:undelete", "/v1/{name=files/**}", "/v1/customers", "/v1/{a}/{b=x/*}"] {
                let _ = PathTemplate::parse(t).unwrap().matches(&path);
            }
        }

        /// Parsing never panics, whatever the template.
        #[test]
        fn arbitrary_templates_never_panic(t in "[/a-z{}=*.:]{0,30}") {
            let _ = PathTemplate::parse(&t);
        }
    }
}
