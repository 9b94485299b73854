//! Open and click tracking of HTML emails: which links of a message are
//! tracked, pointing them (and a pixel) at the tracking endpoint when the
//! message is sent, and finding again, in the message as the ledger stores
//! it, the link a click names by its position.
//!
//! A tracked link is the `href` of an `<a>` element whose value is an
//! http(s) URL, other than the message's own unsubscribe link (a click
//! there is an unsubscribe, not interest). The ledger keeps the message
//! untracked, so the sent log shows what the template rendered and a click
//! is resolved against exactly the links that were rewritten.

use std::ops::Range;

/// One tracked link: where its `href` value is in the HTML, and the URL it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub value: Range<usize>,
    pub url: String,
}

/// The tracked links of `html`, in order of appearance; `unsubscribe` (the
/// message's own unsubscribe URL) is not one of them.
pub fn links(html: &str, unsubscribe: Option<&str>) -> Vec<Link> {
    // ASCII lowercasing keeps every byte offset, so positions found in `lower` hold in `html`.
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a").map(|i| at + i) {
        at = start + 2;
        if !bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            continue;
        }
        let end = lower[at..].find('>').map_or(lower.len(), |i| at + i);
        if let Some(value) = href_value(&lower[..end], at) {
            let url = decode_entities(&html[value.clone()]);
            let http = url.starts_with("http://") || url.starts_with("https://");
            if http && unsubscribe != Some(url.as_str()) {
                found.push(Link { value, url });
            }
        }
        at = end;
    }
    found
}

/// The byte range of the `href` attribute's value in the tag `tag[from..]`.
fn href_value(tag: &str, from: usize) -> Option<Range<usize>> {
    let bytes = tag.as_bytes();
    let mut at = from;
    while let Some(i) = tag[at..].find("href").map(|i| at + i) {
        at = i + 4;
        // An attribute name of its own: preceded by whitespace.
        if !bytes.get(i.wrapping_sub(1)).is_some_and(u8::is_ascii_whitespace) {
            continue;
        }
        let mut j = at;
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if bytes.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        return match bytes.get(j) {
            Some(&quote @ (b'"' | b'\'')) => {
                let close = tag[j + 1..].find(quote as char)? + j + 1;
                Some(j + 1..close)
            }
            Some(_) => {
                let close = tag[j..].find(|c: char| c.is_ascii_whitespace()).map_or(tag.len(), |k| j + k);
                Some(j..close)
            }
            None => None,
        };
    }
    None
}

/// The entities an attribute value of a rendered template may hold, decoded.
fn decode_entities(value: &str) -> String {
    value
        .trim()
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// `html` with each of `links` pointing at `click_url(position)` and the
/// open pixel at `pixel_url` before `</body>` (else at the end).
pub fn tracked(html: &str, links: &[Link], click_url: impl Fn(usize) -> String, pixel_url: &str) -> String {
    let mut out = String::with_capacity(html.len() + links.len() * 120 + 200);
    let mut copied = 0;
    for (position, link) in links.iter().enumerate() {
        out.push_str(&html[copied..link.value.start]);
        out.push_str(&click_url(position).replace('&', "&amp;"));
        copied = link.value.end;
    }
    out.push_str(&html[copied..]);
    let pixel = format!(r#"<img src="{pixel_url}" width="1" height="1" alt="" style="display:none;border:0">"#);
    match out.to_ascii_lowercase().rfind("</body>") {
        Some(at) => out.insert_str(at, &pixel),
        None => out.push_str(&pixel),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &str = r#"<html><body><p>Hi <A class="x" HREF="https://shop.example/sale?a=1&amp;b=2">the sale</A>,
        <a href='http://shop.example/b'>b</a> <a name="top">anchor</a> <a href="mailto:x@example.com">mail</a>
        <a data-href="https://no.example" href=https://shop.example/c>c</a>
        <a href="https://crm.example/v1/unsubscribeLinks/t:unsubscribe">unsubscribe</a></p></body></html>"#;

    #[test]
    fn http_links_but_the_unsubscribe_link_are_tracked_in_order() {
        let found = links(HTML, Some("https://crm.example/v1/unsubscribeLinks/t:unsubscribe"));
        let urls: Vec<&str> = found.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(urls, ["https://shop.example/sale?a=1&b=2", "http://shop.example/b", "https://shop.example/c"]);
        assert_eq!(&HTML[found[0].value.clone()], "https://shop.example/sale?a=1&amp;b=2");
    }

    #[test]
    fn tracking_rewrites_exactly_those_links_and_adds_the_pixel_before_the_body_ends() {
        let found = links(HTML, None);
        let out = tracked(HTML, &found, |i| format!("https://t.example/c?link={i}"), "https://t.example/o");
        assert!(out.contains(r#"HREF="https://t.example/c?link=0""#), "{out}");
        assert!(out.contains("href='https://t.example/c?link=1'") && out.contains("href=https://t.example/c?link=2>"), "{out}");
        assert!(out.contains(r#"href="https://t.example/c?link=3">unsubscribe"#), "without a skip it is tracked too");
        assert!(out.contains(r#"href="mailto:x@example.com""#) && out.contains(r#"data-href="https://no.example""#));
        assert!(out.ends_with(r#"style="display:none;border:0"></body></html>"#), "{out}");
        // The stored (untracked) message resolves each position to its URL.
        assert_eq!(links(HTML, None)[2].url, "https://shop.example/c");
    }

    #[test]
    fn a_fragment_without_body_gets_the_pixel_at_the_end_and_odd_markup_is_no_link() {
        let html = "<p><a href=\"https://x.example\">x</a><a href=>y</a><a href=\"unterminated</p>";
        assert_eq!(links(html, None).len(), 1);
        assert!(tracked(html, &[], |_| String::new(), "https://t.example/o").ends_with(r#"border:0">"#));
        assert!(links("<abbr href=\"https://x.example\">", None).is_empty(), "only <a> elements");
    }
}
