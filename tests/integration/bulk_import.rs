//! `rampart enroll import`: seeds migrated from another MFA system work for
//! real logins, and a bad file changes nothing and names every bad line.

use crate::common::*;

/// RFC 6238 Appendix B seed "12345678901234567890" in base32.
const ALICE_SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const ALICE_SEED: &[u8] = b"12345678901234567890";
/// Another 160-bit seed, for a directory user.
const BOB_SEED_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

#[test]
fn imported_seed_logs_in_through_radclient() {
    let rampart = Rampart::start();
    rampart.add_user("alice", "pw-alice");
    let csv = rampart.dir.path().join("seeds.csv");
    std::fs::write(
        &csv,
        format!(
            "user,base32_seed\n# from the old MFA server\n\nCORP\\Alice,{}\nbob,{BOB_SEED_B32}\n",
            ALICE_SEED_B32.to_lowercase()
        ),
    )
    .unwrap();

    let (status, out, err) = cli(
        &rampart.config,
        &["enroll", "import", csv.to_str().unwrap()],
        "",
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("imported 2 TOTP seed(s)"), "{out}");
    // bob is a name without a local user: allowed (directory users are the
    // normal case) but counted, since with backend = "local" he cannot log in.
    assert!(
        err.contains("warning: 1 of them have no local user"),
        "{err}"
    );
    for seed in [ALICE_SEED_B32, BOB_SEED_B32] {
        assert!(
            !out.contains(seed) && !err.contains(seed) && !out.contains(&seed.to_lowercase()),
            "seed printed"
        );
    }

    let reply = radclient_auth(&rampart, "alice", &format!("pw-alice,{}", code(ALICE_SEED)));
    reply.assert_code("Access-Accept");
    let (_, list, _) = cli(&rampart.config, &["user", "list"], "");
    let bob = list
        .lines()
        .find(|l| l.starts_with("bob "))
        .expect("bob listed");
    assert!(
        bob.split_whitespace().nth(2) == Some("yes"),
        "bob has TOTP: {list}"
    );
}

#[test]
fn a_bad_file_lists_every_bad_line_and_imports_nothing() {
    let rampart = Rampart::start();
    let csv = rampart.dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        format!(
            "carol,{ALICE_SEED_B32}\ndave,GEZDGNBVGY3TQOJQ\nerin;{BOB_SEED_B32}\ncarol,{BOB_SEED_B32}\n"
        ),
    )
    .unwrap();
    let file = csv.to_str().unwrap();

    let (status, out, err) = cli(&rampart.config, &["enroll", "import", file], "");
    assert_eq!(status, 2, "{out}{err}");
    let expected = [
        format!(
            "{file}:2: dave: seed has 80 bits; at least 128 (26 base32 characters) are required"
        ),
        format!("{file}:3: expected 2 fields `user,base32_seed`, found 1"),
        format!("{file}:4: carol: also on line 1"),
    ];
    for line in &expected {
        assert!(
            err.lines().any(|l| l == line),
            "missing {line:?} in:\n{err}"
        );
    }
    assert!(err.contains("3 problem(s); nothing imported"), "{err}");
    assert!(
        !err.contains("GEZD") && !err.contains("JBSW"),
        "seed printed: {err}"
    );

    // All or nothing: the valid first line was not imported either.
    let (_, list, _) = cli(&rampart.config, &["user", "list"], "");
    assert!(list.contains("0 user(s)"), "{list}");
}
