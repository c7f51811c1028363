//! A small blocking HTTP/1.1 client for the portal tests: keeps cookies like
//! a browser (name=value, deleted by `Max-Age=0`), follows 303/302 redirects
//! by hand (so every hop's `Set-Cookie` is seen), and reads forms' CSRF
//! tokens out of the HTML. Plain std TCP, `Connection: close`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One response, after any redirects.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    /// The path finally shown (after redirects).
    pub path: String,
    /// Every path visited, the first request included.
    pub hops: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first form's CSRF token on the page.
    #[track_caller]
    pub fn csrf(&self) -> String {
        self.field_value("csrf")
            .unwrap_or_else(|| panic!("no csrf field in {}: {}", self.path, self.body))
    }

    /// The value of the first `<input name="NAME" value="...">`.
    pub fn field_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(unescape(&self.body[start..start + end]))
    }

    /// The `data-screen` name of the page.
    pub fn screen(&self) -> Option<&str> {
        let start = self.body.find("data-screen=\"")? + "data-screen=\"".len();
        let end = self.body[start..].find('"')?;
        Some(&self.body[start..start + end])
    }

    /// The text of the first element with `class="CLASS"`.
    pub fn text_of_class(&self, class: &str) -> Option<String> {
        let marker = format!("class=\"{class}\"");
        let start = self.body.find(&marker)?;
        let open = self.body[start..].find('>')? + start + 1;
        let close = self.body[open..].find('<')? + open;
        Some(unescape(&self.body[open..close]))
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Page {
        assert_eq!(
            self.status,
            status,
            "{} -> {}: {}",
            self.hops.join(" -> "),
            self.path,
            self.body
        );
        self
    }

    #[track_caller]
    pub fn assert_contains(&self, text: &str) -> &Page {
        assert!(
            self.body.contains(text),
            "{text:?} not on {} (status {}): {}",
            self.path,
            self.status,
            self.body
        );
        self
    }
}

pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `application/x-www-form-urlencoded`.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fn enc(text: &str) -> String {
        let mut out = String::new();
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser-like client of one server.
pub struct Web {
    pub addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
    /// Sent with every request, as a reverse proxy would add them.
    pub extra_headers: Vec<(String, String)>,
}

impl Web {
    pub fn new(addr: SocketAddr) -> Web {
        Web {
            addr,
            cookies: BTreeMap::new(),
            extra_headers: Vec::new(),
        }
    }

    /// This client as a reverse proxy in front of the portal presents it.
    pub fn forwarded_for(mut self, chain: &str) -> Web {
        self.extra_headers
            .push(("x-forwarded-for".into(), chain.into()));
        self
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None, true)
    }

    /// GET without following a redirect.
    pub fn get_raw(&mut self, path: &str) -> Page {
        self.request("GET", path, None, false)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.request("POST", path, Some(form_encode(fields)), true)
    }

    /// POST without following a redirect.
    pub fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.request("POST", path, Some(form_encode(fields)), false)
    }

    fn request(&mut self, method: &str, path: &str, body: Option<String>, follow: bool) -> Page {
        let mut hops = vec![path.to_string()];
        let mut page = self.once(method, path, body.as_deref());
        while follow && matches!(page.status, 301 | 302 | 303 | 307) {
            let location = page
                .header("location")
                .expect("redirect has Location")
                .to_string();
            assert!(hops.len() < 10, "redirect loop: {hops:?}");
            hops.push(location.clone());
            page = self.once("GET", &location, None);
        }
        page.hops = hops;
        page
    }

    fn once(&mut self, method: &str, path: &str, body: Option<&str>) -> Page {
        let mut stream = TcpStream::connect(self.addr).expect("portal reachable");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nuser-agent: rampart-tests\r\n",
            self.addr
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("cookie: {}\r\n", jar.join("; ")));
        }
        for (name, value) in &self.extra_headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        if let Some(body) = body {
            stream.write_all(body.as_bytes()).unwrap();
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP response");
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        for (name, value) in &headers {
            if name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if value.contains("Max-Age=0") {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies
                        .insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        Page {
            status,
            path: path.to_string(),
            hops: Vec::new(),
            headers,
            body,
        }
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(&after[..size.min(after.len())]);
        rest = after.get(size + 2..).unwrap_or_default();
    }
    out
}
