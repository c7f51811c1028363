//! Page templates: plain server-rendered HTML, one small stylesheet, no
//! scripts. Every value that did not come from this file goes through
//! [`esc`]. Each page has one highlighted next step (`.next`) and a
//! `data-screen` name (the browser test counts screens with it).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use qrcode::QrCode;
use qrcode::render::svg;

/// Escapes text for HTML element content and quoted attributes (one
/// escaper for every page rampart serves).
pub use crate::http::oob::escape as esc;

/// One page.
pub struct Page<'a> {
    /// Organisation name (`[portal] title`).
    pub site: &'a str,
    /// The page heading.
    pub title: &'a str,
    /// Screen name for `data-screen`.
    pub screen: &'a str,
    /// The one thing to do next, shown first.
    pub next: &'a str,
    /// Already-escaped body HTML.
    pub body: String,
    /// Reload after this many seconds (waiting for a push answer).
    pub refresh: Option<u32>,
    /// Signed in: show the sign-out button with this CSRF token.
    pub signed_in_csrf: Option<&'a str>,
    /// A one-time notice from the previous step.
    pub flash: Option<String>,
}

impl Page<'_> {
    /// The page with status 200.
    pub fn ok(self) -> Response {
        self.with_status(StatusCode::OK)
    }

    /// The page with another status (errors say what to do next, too).
    pub fn with_status(self, status: StatusCode) -> Response {
        let refresh = self
            .refresh
            .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
            .unwrap_or_default();
        let signout = self
            .signed_in_csrf
            .map(|csrf| {
                format!(
                    "<form method=\"post\" action=\"/enroll/signout\" class=\"signout\">{}<button class=\"link\">Sign out</button></form>",
                    csrf_field(csrf)
                )
            })
            .unwrap_or_default();
        let flash = self
            .flash
            .map(|f| format!("<p class=\"flash\" role=\"status\">{}</p>", esc(&f)))
            .unwrap_or_default();
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             {refresh}<title>{title} · {site}</title>\
             <link rel=\"stylesheet\" href=\"/enroll/portal.css\"></head>\
             <body><header><span class=\"site\">{site}</span>{signout}</header>\
             <main data-screen=\"{screen}\"><h1>{title}</h1>{flash}\
             <p class=\"next\">{next}</p>{body}</main></body></html>\n",
            title = esc(self.title),
            site = esc(self.site),
            screen = esc(self.screen),
            next = esc(self.next),
            body = self.body,
        );
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response()
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A one-button POST form.
pub fn button(action: &str, csrf: &str, label: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\">{}<button class=\"{}\">{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(class),
        esc(label)
    )
}

/// A QR code as inline SVG (no image request, no script; CSP-clean), large
/// enough to scan from a laptop screen.
pub fn qr_svg(text: &str, label: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color<'_>>()
                .min_dimensions(264, 264)
                .quiet_zone(true)
                .dark_color(svg::Color("#000"))
                .light_color(svg::Color("#fff"))
                .build();
            // Inline in HTML the XML declaration is noise.
            let svg = match svg.find("<svg") {
                Some(start) => &svg[start..],
                None => &svg,
            };
            format!(
                "<figure class=\"qr\" role=\"img\" aria-label=\"{}\">{svg}</figure>",
                esc(label)
            )
        }
        Err(_) => {
            "<p class=\"error\">The QR code could not be drawn: type the key below instead.</p>"
                .into()
        }
    }
}

/// The stylesheet: readable on a phone, no external fonts.
pub const CSS: &str = r#"*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f6f8}
header{display:flex;justify-content:space-between;align-items:center;padding:.6rem 1rem;background:#1f3a5f;color:#fff}
header .site{font-weight:600}
main{max-width:34rem;margin:1rem auto;padding:1.25rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.35rem;margin:0 0 .75rem}
h2{font-size:1.05rem;margin:1.25rem 0 .4rem}
.next{background:#e8f1fb;border-left:4px solid #2b6cb0;padding:.6rem .8rem;margin:0 0 1rem}
.flash{background:#e6f4ea;border-left:4px solid #2f855a;padding:.6rem .8rem}
.error{background:#fdecea;border-left:4px solid #c53030;padding:.6rem .8rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password],input[type=tel]{width:100%;padding:.6rem;font-size:1.05rem;border:1px solid #aab4bf;border-radius:6px}
input.code{font-size:1.5rem;letter-spacing:.3em;text-align:center;max-width:12rem}
button{margin-top:1rem;padding:.65rem 1.2rem;font-size:1rem;border:0;border-radius:6px;background:#2b6cb0;color:#fff;cursor:pointer}
button.secondary{background:#e2e8f0;color:#1b1f24}
button.danger{background:#c53030}
button.link,header button{background:none;color:inherit;text-decoration:underline;padding:0;margin:0}
form{margin:0}
.qr{margin:1rem auto;text-align:center}
.qr svg{width:264px;height:264px;max-width:100%}
.key{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1.05rem;word-break:break-all;background:#f4f6f8;padding:.4rem .6rem;border-radius:4px}
ul.codes{columns:2;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1.1rem;padding-left:1.2rem}
table{width:100%;border-collapse:collapse}
td,th{text-align:left;padding:.35rem .25rem;border-bottom:1px solid #e2e8f0;vertical-align:middle}
td form button{margin:0}
.factor{display:flex;justify-content:space-between;align-items:center;gap:.5rem;padding:.6rem 0;border-bottom:1px solid #e2e8f0}
.factor .state{color:#4a5568;font-size:.9rem}
.actions{display:flex;gap:.5rem;flex-wrap:wrap}
.actions a,.actions form{display:inline-block}
a.button{display:inline-block;margin-top:1rem;padding:.65rem 1.2rem;border-radius:6px;background:#2b6cb0;color:#fff;text-decoration:none}
a.button.secondary{background:#e2e8f0;color:#1b1f24}
.factor a.button,.factor button{margin-top:0;padding:.4rem .8rem;font-size:.9rem}
small{color:#4a5568}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn qr_is_inline_svg_without_xml_declaration() {
        let svg = qr_svg("otpauth://totp/x?secret=ABC", "QR");
        assert!(svg.starts_with("<figure"), "{svg}");
        assert!(svg.contains("<svg") && !svg.contains("<?xml"));
    }
}
