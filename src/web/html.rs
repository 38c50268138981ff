//! HTML text: every string from a tracker, a declaration or a person goes
//! through [`esc`]; the layout every page shares.

use std::fmt::Write;

/// `text` safe inside HTML text and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one part of a URL path or query value.
pub fn url(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A whole page: `title` (plain text), `who` and `body` (HTML already
/// escaped). `csrf` goes in a meta tag for the script and in every form.
/// `refresh`: seconds after which the page reloads itself (progress of
/// runs, without a script).
pub fn page(title: &str, who: &str, csrf: &str, body: &str, refresh: Option<u32>) -> String {
    let mut html = String::with_capacity(body.len() + 1024);
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">\n"))
        .unwrap_or_default();
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
{refresh}<title>{title} · Trellis</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header><a class="brand" href="/">Trellis</a>
<nav><a href="/">Overview</a><a href="/plans">Plans</a><a href="/jobs">Jobs</a></nav>
<span class="who">{who}</span></header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        csrf = esc(csrf),
        title = esc(title),
    );
    html
}

/// A form posting to `action` with the CSRF token and `fields` (name,
/// value) hidden, and one button.
pub fn button(action: &str, csrf: &str, fields: &[(&str, &str)], label: &str) -> String {
    let mut html = format!(
        r#"<form class="inline" method="post" action="{}"><input type="hidden" name="csrf" value="{}">"#,
        esc(action),
        esc(csrf)
    );
    for (name, value) in fields {
        let _ = write!(
            html,
            r#"<input type="hidden" name="{}" value="{}">"#,
            esc(name),
            esc(value)
        );
    }
    let _ = write!(
        html,
        r#"<button type="submit">{}</button></form>"#,
        esc(label)
    );
    html
}

/// `time` as the pages show it (UTC, to the second).
pub fn time(time: Option<jiff::Timestamp>) -> String {
    match time {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => "never".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_text_cannot_open_a_tag_or_leave_an_attribute() {
        let summary = r#"<script>alert("x")</script> & 'quoted'"#;
        assert_eq!(
            esc(summary),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"
        );
        let page = page(summary, "", "t\"ok", "", None);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains(r#"content="t&quot;ok""#));
    }

    #[test]
    fn keys_and_names_are_encoded_in_urls() {
        assert_eq!(url("a b&c/d"), "a+b%26c%2Fd");
    }
}
