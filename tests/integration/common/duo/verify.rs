//! What Duo checks on every signed request, written independently of
//! rampart's signer: the `Date` window, the Basic credentials, the ikey,
//! and the HMAC-SHA512 over the signature v2 canonical request (duo_client
//! `canonicalize`), compared in constant time.

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha512;
use subtle::ConstantTimeEq;

use super::Shared;
use super::api::{fail, unix_now};

pub(super) fn verify_signature(
    state: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), (StatusCode, Value)> {
    let Some(date) = headers.get("date").and_then(|v| v.to_str().ok()) else {
        return Err(fail(401, 40104, "Missing request Date header", None));
    };
    match parse_rfc2822(date) {
        Some(t) if (t - unix_now()).abs() <= 300 => {}
        Some(_) => return Err(fail(401, 40105, "Request date out of range", None)),
        None => return Err(fail(401, 40104, "Invalid request Date header", None)),
    }
    let missing = || fail(401, 40101, "Missing request credentials", None);
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(missing)?;
    let (ikey, signature) = credentials.split_once(':').ok_or_else(missing)?;
    let (skey, host) = {
        let s = state.lock().unwrap();
        let Some(skey) = s.keys.get(ikey) else {
            return Err(fail(
                401,
                40102,
                "Invalid integration key in request credentials",
                None,
            ));
        };
        (skey.clone(), s.host.clone())
    };
    // Signature v2 canonical request, rebuilt from what arrived.
    let mut pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (quote(k), quote(v))).collect();
    pairs.sort();
    let canon_params = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canon = format!(
        "{date}\n{}\n{}\n{path}\n{canon_params}",
        method.as_str().to_uppercase(),
        host.to_lowercase()
    );
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(skey.as_bytes()).unwrap();
    mac.update(canon.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if expected.as_bytes().ct_eq(signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(fail(
            401,
            40103,
            "Invalid signature in request credentials",
            None,
        ))
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
pub(super) fn decode_form(text: &str) -> Vec<(String, String)> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Python's `urllib.parse.quote(s, '~')`.
fn quote(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses `Tue, 14 Nov 2023 22:13:20 -0000` (RFC 2822 §3.3; also `GMT`
/// and numeric offsets) to Unix seconds.
pub fn parse_rfc2822(text: &str) -> Option<i64> {
    let text = text.split_once(", ").map_or(text, |(_, rest)| rest);
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let offset = match *zone {
        "GMT" | "UT" | "UTC" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}
