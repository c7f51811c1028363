//! A real OpenLDAP `slapd` for the LDAP tests: its own temp dir with a generated
//! `slapd.conf`, an MDB database loaded with `slapadd`, certificates from
//! [`super::certs`], listening on free loopback ports for `ldap://` (with
//! StartTLS) and `ldaps://`. slapd runs in the
//! foreground under `timeout`, so it dies by itself even if a test is killed,
//! and is stopped on drop.
//!
//! The directory (base `dc=example,dc=org`):
//! - `cn=rampart-svc`: service account; may search everything but may not read
//!   `userPassword`;
//! - `ou=people`: alice (mobile, mail), bob, carol (only through the nested group
//!   `contractors`), dave (in no group), erin (MFA-exempt), frank
//!   (`employeeType: disabled`), admin, and `twin` (also in `ou=staff`: ambiguous);
//! - `ou=groups`: `vpn-users` ⊃ {alice, bob, erin, `contractors` ⊃ {carol}},
//!   `mfa-exempt` ⊃ {erin}; `memberOf` values are loaded as the memberof overlay
//!   would keep them (direct groups only);
//! - `cn=Monitor`, readable by the root DN, for connection and operation counters.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use super::certs::Tls;
use super::certs::make_certificates;

pub const BASE: &str = "dc=example,dc=org";
pub const SERVICE_DN: &str = "cn=rampart-svc,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "svc-Bind-s3cret";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
pub const ROOT_PASSWORD: &str = "root-Adm1n-pw";
pub const VPN_USERS: &str = "cn=vpn-users,ou=groups,dc=example,dc=org";
pub const MFA_EXEMPT: &str = "cn=mfa-exempt,ou=groups,dc=example,dc=org";

/// (uid, password) of the test users.
pub const ALICE: (&str, &str) = ("alice", "alice-Pw-1");
pub const BOB: (&str, &str) = ("bob", "bob-Pw-2");
pub const CAROL: (&str, &str) = ("carol", "carol-Pw-3");
pub const DAVE: (&str, &str) = ("dave", "dave-Pw-4");
pub const ERIN: (&str, &str) = ("erin", "erin-Pw-5");
pub const FRANK: (&str, &str) = ("frank", "frank-Pw-6");
pub const ADMIN: (&str, &str) = ("admin", "admin-Pw-7");
pub const TWIN: (&str, &str) = ("twin", "twin-Pw-8");

/// How long slapd may live at most.
const TTL_SECS: u32 = 300;

#[derive(Default, Clone)]
pub struct SlapdOptions {
    /// TLSVerifyClient demand: TLS clients must present a certificate from the CA.
    pub require_client_cert: bool,
}

pub struct Slapd {
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    pub tls: Tls,
    child: Option<Child>,
}

/// Counters from cn=Monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted since start.
    pub connections: u64,
    /// Bind operations completed.
    pub binds: u64,
    /// Search operations completed.
    pub searches: u64,
}

fn run(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn person(uid: &str, ou: &str, password: &str, extra: &str, groups: &[&str]) -> String {
    let member_of: String = groups.iter().map(|g| format!("memberOf: {g}\n")).collect();
    format!(
        "dn: uid={uid},ou={ou},{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\n{extra}{member_of}\n"
    )
}

fn group(cn: &str, members: &[String]) -> String {
    let members: String = members.iter().map(|m| format!("member: {m}\n")).collect();
    format!("dn: cn={cn},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n")
}

fn people(uid: &str) -> String {
    format!("uid={uid},ou=people,{BASE}")
}

fn data() -> String {
    let contractors = format!("cn=contractors,ou=groups,{BASE}");
    let mut ldif = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: rampart-svc\nuserPassword: {SERVICE_PASSWORD}\n\n"
    );
    for ou in ["people", "staff", "groups"] {
        ldif += &format!("dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n\n");
    }
    ldif += &person(
        ALICE.0,
        "people",
        ALICE.1,
        "mobile: +15550100001\nmail: alice@example.org\n",
        &[VPN_USERS],
    );
    ldif += &person(BOB.0, "people", BOB.1, "", &[VPN_USERS]);
    ldif += &person(CAROL.0, "people", CAROL.1, "", &[&contractors]);
    ldif += &person(DAVE.0, "people", DAVE.1, "mail: dave@example.org\n", &[]);
    ldif += &person(ERIN.0, "people", ERIN.1, "", &[VPN_USERS, MFA_EXEMPT]);
    ldif += &person(
        FRANK.0,
        "people",
        FRANK.1,
        "employeeType: disabled\n",
        &[VPN_USERS],
    );
    ldif += &person(ADMIN.0, "people", ADMIN.1, "", &[VPN_USERS]);
    ldif += &person(TWIN.0, "people", TWIN.1, "", &[VPN_USERS]);
    ldif += &person(TWIN.0, "staff", TWIN.1, "", &[]);
    ldif += &group(
        "vpn-users",
        &[
            people("alice"),
            people("bob"),
            people("erin"),
            people("frank"),
            people("admin"),
            people("twin"),
            contractors.clone(),
        ],
    );
    ldif += &group("contractors", &[people("carol")]);
    ldif += &group("mfa-exempt", &[people("erin")]);
    ldif
}

fn config(dir: &Path, options: &SlapdOptions) -> String {
    let d = dir.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
TLSVerifyClient {verify}
loglevel stats

database mdb
maxsize 16777216
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {d}/db
overlay memberof
index objectClass eq
index uid eq
index member eq

# Passwords are for binding only: nobody, not even the service account, reads them.
access to attrs=userPassword
  by anonymous auth
  by * none
# Signed-in users see the suffix entry (a search based there needs it) and groups.
access to dn.base="{BASE}"
  by users read
  by * none
access to dn.subtree="ou=groups,{BASE}"
  by users read
  by * none
access to *
  by dn.exact="{SERVICE_DN}" read
  by self read
  by * none

database monitor
access to *
  by dn.exact="{ROOT_DN}" read
  by * none
"#,
        verify = if options.require_client_cert {
            "demand"
        } else {
            "never"
        },
    )
}

impl Slapd {
    pub fn start() -> Slapd {
        Slapd::start_with(SlapdOptions::default())
    }

    pub fn start_with(options: SlapdOptions) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let tls = make_certificates(dir.path());
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("slapd.conf"), config(dir.path(), &options)).unwrap();
        std::fs::write(dir.path().join("init.ldif"), data()).unwrap();
        run(Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(dir.path().join("init.ldif")));
        let mut slapd = Slapd {
            dir,
            port: 0,
            tls_port: 0,
            tls,
            child: None,
        };
        // A free port can be taken between our check and slapd's bind: try again.
        for _ in 0..5 {
            slapd.port = super::ports::free_port();
            slapd.tls_port = super::ports::free_port();
            if slapd.spawn() {
                return slapd;
            }
        }
        panic!("slapd did not start: {}", slapd.log());
    }

    /// Starts slapd on the current ports; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        // The log is appended across restarts: count this start's line only.
        let starts_before = self.log().matches("slapd starting").count();
        // stats: connections and operations, with their filters, for the tests to read.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("slapd.log"))
            .unwrap();
        let child = Command::new("timeout")
            .args([
                "-k",
                "5",
                &TTL_SECS.to_string(),
                "/usr/sbin/slapd",
                "-d",
                "stats",
                "-f",
            ])
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
                self.port, self.tls_port
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("slapd runs: run ./scripts/test to install it");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // "slapd starting" comes once every listener is bound: a port
            // that answers before it may belong to someone else.
            if self.log().matches("slapd starting").count() > starts_before
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok()
            {
                return true;
            }
            if let Some(child) = self.child.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("slapd did not listen: {}", self.log());
    }

    /// `ldap://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldap://localhost:PORT`, the name in the server certificate (for StartTLS).
    pub fn starttls_url(&self) -> String {
        format!("ldap://localhost:{}", self.port)
    }

    /// `ldaps://HOST:PORT`; only `localhost` matches the certificate.
    pub fn ldaps_url(&self, host: &str) -> String {
        format!("ldaps://{host}:{}", self.tls_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// The `[primary]` TOML for search then bind against this server, plus `extra`.
    pub fn primary(&self, extra: &str) -> String {
        format!(
            "backend = \"ldap\"\nurls = [\"{}\"]\nbind_dn = \"{SERVICE_DN}\"\nbind_password = \"{SERVICE_PASSWORD}\"\nbase_dn = \"{BASE}\"\n{extra}\n",
            self.url()
        )
    }

    /// Stops slapd: SIGTERM to `timeout`, which passes it on.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if super::terminate_gracefully(&mut child, Duration::from_secs(10)) {
            return;
        }
        // Still there: kill slapd itself, then its `timeout` wrapper.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("slapd.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to slapd itself, not to its
    /// `timeout` wrapper (which passes on only the signals it can catch).
    pub fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("slapd.pid")).expect("slapd.pid");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -{signal} slapd");
    }

    /// Starts slapd again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("slapd did not restart: {}", self.log());
    }

    /// Runs ldapsearch as `dn`; returns its LDIF output.
    pub fn ldapsearch(
        &self,
        dn: &str,
        password: &str,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> String {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.url(),
                "-D",
                dn,
                "-w",
                password,
                "-b",
                base,
                filter,
            ])
            .args(attrs)
            .output()
            .expect("ldapsearch (ldap-utils) runs: run ./scripts/test to install it");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Counters from cn=Monitor, read with one connection and one bind of its own.
    pub fn counters(&self) -> Counters {
        let ldif = self.ldapsearch(
            ROOT_DN,
            ROOT_PASSWORD,
            "cn=Monitor",
            "(|(cn=Total)(cn=Bind)(cn=Search))",
            &["monitorCounter", "monitorOpCompleted"],
        );
        let mut counters = Counters {
            connections: 0,
            binds: 0,
            searches: 0,
        };
        let mut current = String::new();
        for line in ldif.lines() {
            if let Some(dn) = line.strip_prefix("dn: ") {
                current = dn.to_string();
            } else if let Some((_, value)) = line.split_once(": ") {
                let value: u64 = value.trim().parse().unwrap_or(0);
                if current.starts_with("cn=Total,cn=Connections")
                    && line.starts_with("monitorCounter")
                {
                    counters.connections = value;
                } else if current.starts_with("cn=Bind,") && line.starts_with("monitorOpCompleted")
                {
                    counters.binds = value;
                } else if current.starts_with("cn=Search,")
                    && line.starts_with("monitorOpCompleted")
                {
                    counters.searches = value;
                }
            }
        }
        assert!(counters.connections > 0, "monitor answered: {ldif}");
        counters
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
