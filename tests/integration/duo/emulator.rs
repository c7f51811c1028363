//! The emulator refuses what Duo refuses.

use rampart::factor::duo::sign;

use super::{rampart_now, run};
use crate::common::duo::{DuoEmulator, Phone, SKEY, User};

/// Sends a request signed with rampart's signer, optionally spoiled.
async fn raw(
    duo: &DuoEmulator,
    method: &str,
    path: &str,
    params: &[(&str, String)],
    date: Option<String>,
    signed_params: Option<&[(&str, String)]>,
) -> (u16, serde_json::Value) {
    let pem = std::fs::read(&duo.ca).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    let body = sign::canon_params(params);
    let mut request = if method == "GET" {
        http.get(format!("https://{}{path}?{body}", duo.host))
    } else {
        http.post(format!("https://{}{path}", duo.host))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    if let Some(date) = date {
        let canon = sign::canonicalize(
            &date,
            method,
            &duo.host,
            path,
            &sign::canon_params(signed_params.unwrap_or(params)),
        );
        request = request.header("date", date).header(
            "authorization",
            sign::authorization(&duo.ikey, SKEY.as_bytes(), &canon),
        );
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn now_date() -> String {
    sign::rfc2822_date(rampart_now())
}

#[test]
fn emulator_refuses_what_duo_refuses() {
    let duo = DuoEmulator::start();
    duo.set_user("alice", User::with_phone(Phone::Never));
    let user = || ("username", "alice".to_string());
    let (answers, _) = run(async {
        let duo = &duo;
        vec![
            // Correctly signed: accepted.
            raw(
                duo,
                "POST",
                "/auth/v2/preauth",
                &[user()],
                Some(now_date()),
                None,
            )
            .await,
            // No Date / no signature.
            raw(duo, "POST", "/auth/v2/preauth", &[user()], None, None).await,
            // Ten minutes old.
            raw(
                duo,
                "POST",
                "/auth/v2/preauth",
                &[user()],
                Some(sign::rfc2822_date(rampart_now() - 600)),
                None,
            )
            .await,
            // Signed for other parameters than those sent.
            raw(
                duo,
                "POST",
                "/auth/v2/preauth",
                &[user()],
                Some(now_date()),
                Some(&[("username", "mallory".to_string())]),
            )
            .await,
            // Missing username.
            raw(duo, "POST", "/auth/v2/preauth", &[], Some(now_date()), None).await,
            // Passcode factor without a passcode.
            raw(
                duo,
                "POST",
                "/auth/v2/auth",
                &[user(), ("factor", "passcode".into())],
                Some(now_date()),
                None,
            )
            .await,
            // Push without a device.
            raw(
                duo,
                "POST",
                "/auth/v2/auth",
                &[user(), ("factor", "push".into())],
                Some(now_date()),
                None,
            )
            .await,
            // Status without txid.
            raw(
                duo,
                "GET",
                "/auth/v2/auth_status",
                &[],
                Some(now_date()),
                None,
            )
            .await,
            // ping needs no signature.
            raw(duo, "GET", "/auth/v2/ping", &[], None, None).await,
        ]
    });
    let codes: Vec<(u16, Option<u64>)> = answers
        .iter()
        .map(|(status, body)| (*status, body["code"].as_u64()))
        .collect();
    assert_eq!(
        codes,
        [
            (200, None),
            (401, Some(40104)),
            (401, Some(40105)),
            (401, Some(40103)),
            (400, Some(40001)),
            (400, Some(40001)),
            (400, Some(40001)),
            (400, Some(40001)),
            (200, None),
        ]
    );
    assert_eq!(answers[0].1["response"]["result"], "auth");
    assert_eq!(answers[3].1["stat"], "FAIL");
    assert_eq!(
        answers[3].1["message"],
        "Invalid signature in request credentials"
    );
}

#[test]
fn emulator_dates_parse_like_rfc_2822() {
    use crate::common::duo::parse_rfc2822;
    assert_eq!(
        parse_rfc2822("Tue, 14 Nov 2023 22:13:20 -0000"),
        Some(1_700_000_000)
    );
    assert_eq!(
        parse_rfc2822("Tue, 14 Nov 2023 23:13:20 +0100"),
        Some(1_700_000_000)
    );
    assert_eq!(
        parse_rfc2822("Tue, 14 Nov 2023 22:13:20 GMT"),
        Some(1_700_000_000)
    );
    assert_eq!(parse_rfc2822("yesterday"), None);
}
