//! An in-process stand-in for an Active Directory domain controller, for what
//! slapd cannot do: refuse simple binds with result 49 and AD's diagnostic text
//! (`... AcceptSecurityContext error, data 775, v4563`). It speaks just enough
//! BER (RFC 4511 §4.1.1, §4.2.2): every BindRequest gets invalidCredentials with
//! the diagnostic configured for its bind name, every SearchRequest an empty
//! success, an UnbindRequest closes. Listens on 127.0.0.1, port from the kernel.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

pub struct MockAd {
    pub url: String,
}

/// AD's diagnostic for a Win32 error code.
pub fn diagnostic(code: &str) -> String {
    format!(
        "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563"
    )
}

fn read_length(stream: &mut TcpStream) -> Option<usize> {
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).ok()?;
    if first[0] < 0x80 {
        return Some(first[0] as usize);
    }
    let count = (first[0] & 0x7f) as usize;
    if count == 0 || count > 4 {
        return None;
    }
    let mut bytes = vec![0u8; count];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes.iter().fold(0usize, |n, b| (n << 8) | *b as usize))
}

fn encode_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        vec![0x82, (len >> 8) as u8, len as u8]
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(encode_length(content.len()));
    out.extend_from_slice(content);
    out
}

/// (tag, content) of the next element inside `bytes`, and the rest.
fn split(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *bytes.first()?;
    let (len, header) = match *bytes.get(1)? {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (*bytes.get(2)? as usize, 3),
        0x82 => (
            ((*bytes.get(2)? as usize) << 8) | *bytes.get(3)? as usize,
            4,
        ),
        _ => return None,
    };
    let content = bytes.get(header..header + len)?;
    Some((tag, content, &bytes[header + len..]))
}

fn result(id: &[u8], op: u8, rc: u8, text: &str) -> Vec<u8> {
    let mut body = tlv(0x0a, &[rc]);
    body.extend(tlv(0x04, b""));
    body.extend(tlv(0x04, text.as_bytes()));
    let mut message = tlv(0x02, id);
    message.extend(tlv(op, &body));
    tlv(0x30, &message)
}

fn serve(mut stream: TcpStream, answers: Arc<Vec<(String, String)>>) {
    loop {
        let mut tag = [0u8; 1];
        if stream.read_exact(&mut tag).is_err() || tag[0] != 0x30 {
            return;
        }
        let Some(len) = read_length(&mut stream) else {
            return;
        };
        let mut message = vec![0u8; len];
        if stream.read_exact(&mut message).is_err() {
            return;
        }
        let Some((0x02, id, rest)) = split(&message) else {
            return;
        };
        let Some((op, body, _)) = split(rest) else {
            return;
        };
        let reply = match op {
            // BindRequest: version, name, simple password.
            0x60 => {
                let name = split(body)
                    .and_then(|(_, _, rest)| split(rest))
                    .map(|(_, name, _)| String::from_utf8_lossy(name).into_owned())
                    .unwrap_or_default();
                let text = answers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, code)| diagnostic(code))
                    .unwrap_or_else(|| diagnostic("52e"));
                result(id, 0x61, 49, &text)
            }
            // SearchRequest: SearchResultDone, success, no entries.
            0x63 => result(id, 0x65, 0, ""),
            _ => return,
        };
        if stream.write_all(&reply).is_err() {
            return;
        }
    }
}

impl MockAd {
    /// A server answering binds as `name` with `data CODE`, others with `data 52e`.
    pub fn start(answers: &[(&str, &str)]) -> MockAd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ldap://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let answers: Arc<Vec<(String, String)>> = Arc::new(
            answers
                .iter()
                .map(|(n, c)| (n.to_string(), c.to_string()))
                .collect(),
        );
        // The accept thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let answers = answers.clone();
                std::thread::spawn(move || serve(stream, answers));
            }
        });
        MockAd { url }
    }
}
