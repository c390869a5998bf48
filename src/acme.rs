//! ACME certificates (#16): the `[acme]` table of proxy.toml, the challenge
//! directory shared by the renewing client and the proxy, and the client
//! itself (`sapphire-ctl cert renew`, run by `sapphire-cert-renew.timer`).
//!
//! The proxy has no network: it only reads challenge responses from the
//! challenge directory (root-owned, readable by the proxy's group) and
//! answers ALPN `acme-tls/1` handshakes with them. The client talks to the
//! directory, writes the challenges, then the certificate and key
//! (atomically) to the TLS directory, and asks the proxy to reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::fsutil::atomic_write;

/// Let's Encrypt's production directory (the default).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, high limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// Where the client leaves challenge responses for the proxy.
pub const DEFAULT_CHALLENGE_DIR: &str = "/run/sapphire/acme";
/// The ALPN protocol of tls-alpn-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// On the proxy's own HTTPS port (default).
    TlsAlpn01,
    /// On port 80 (the optional sapphire-proxy-http.socket).
    Http01,
}

/// `[acme]` as written in proxy.toml.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct AcmeFile {
    #[serde(default)]
    pub domains: Vec<String>,
    pub contact: Option<String>,
    pub directory: Option<String>,
    pub directory_ca: Option<PathBuf>,
    pub challenge: Option<String>,
    pub challenge_dir: Option<PathBuf>,
}

/// The checked `[acme]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub domains: Vec<String>,
    pub contact: Option<String>,
    pub directory: String,
    pub directory_ca: Option<PathBuf>,
    pub challenge: Challenge,
    pub challenge_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A bad value in `[acme]`; the message names the key.
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Acme {
        what: &'static str,
        #[source]
        source: instant_acme::Error,
    },
    #[error("{what}: {message}")]
    Order { what: &'static str, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate {path}: {message}")]
    Cert { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AcmeError {
    let path = path.to_path_buf();
    move |source| AcmeError::Io { path, source }
}

fn acme(what: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |source| AcmeError::Acme { what, source }
}

/// A DNS name we accept in `acme.domains` and as a challenge file name:
/// lower-case letters, digits, `-` and `.`, labels of 1 to 63, at most 253.
pub fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An ACME token (base64url, RFC 8555 §8.1), safe as a file name.
pub fn valid_token(t: &str) -> bool {
    (16..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AcmeFile {
    /// Checks every key; `None` when `domains` is empty (ACME off).
    pub fn check(self) -> Result<Option<AcmeConfig>, AcmeError> {
        let bad = |m: String| Err(AcmeError::Config(m));
        if self.domains.is_empty() {
            if self.contact.is_some() || self.directory.is_some() || self.challenge.is_some() {
                return bad("acme.domains: give at least one domain to turn ACME on".into());
            }
            return Ok(None);
        }
        for d in &self.domains {
            if !valid_domain(d) {
                return bad(format!(
                    "acme.domains: {d:?} is not a lower-case DNS name (no wildcard, no IP address)"
                ));
            }
        }
        if let Some(c) = &self.contact {
            if !c.starts_with("mailto:") || c.len() < 10 || !c.contains('@') {
                return bad(format!(
                    "acme.contact: {c:?} must look like \"mailto:admin@example.org\""
                ));
            }
        }
        let directory = self.directory.unwrap_or_else(|| LETS_ENCRYPT.to_string());
        if !directory.starts_with("https://") || directory.len() <= "https://".len() {
            return bad(format!(
                "acme.directory: {directory:?} must be an https:// URL"
            ));
        }
        if let Some(ca) = &self.directory_ca {
            if let Err(e) = CertificateDer::from_pem_file(ca) {
                return bad(format!(
                    "acme.directory_ca: {}: no PEM certificate ({e})",
                    ca.display()
                ));
            }
        }
        let challenge = match self.challenge.as_deref() {
            None | Some("tls-alpn-01") => Challenge::TlsAlpn01,
            Some("http-01") => Challenge::Http01,
            Some(other) => {
                return bad(format!(
                    "acme.challenge: {other:?} is not \"tls-alpn-01\" or \"http-01\""
                ))
            }
        };
        Ok(Some(AcmeConfig {
            domains: self.domains,
            contact: self.contact,
            directory,
            directory_ca: self.directory_ca,
            challenge,
            challenge_dir: self
                .challenge_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CHALLENGE_DIR)),
        }))
    }
}

// ---- the challenge directory ----

fn alpn_file(dir: &Path, domain: &str) -> PathBuf {
    dir.join("tls-alpn-01").join(format!("{domain}.pem"))
}

fn http_file(dir: &Path, token: &str) -> PathBuf {
    dir.join("http-01").join(token)
}

/// The tls-alpn-01 certificate for `domain` (proxy side), if the client left one.
pub fn alpn_challenge(dir: &Path, domain: &str) -> Option<Arc<CertifiedKey>> {
    if !valid_domain(domain) {
        return None;
    }
    let pem = read_small(&alpn_file(dir, domain))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(&pem).ok()?;
    // Not `CertifiedKey::from_der`: its key check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension.
    let provider = rustls::crypto::ring::default_provider();
    match provider.key_provider.load_private_key(key) {
        Ok(k) => Some(Arc::new(CertifiedKey::new(chain, k))),
        Err(e) => {
            warn!("tls-alpn-01 challenge for {domain}: {e}");
            None
        }
    }
}

/// The http-01 key authorization for `token` (proxy side).
pub fn http_challenge(dir: &Path, token: &str) -> Option<Vec<u8>> {
    if !valid_token(token) {
        return None;
    }
    read_small(&http_file(dir, token))
}

fn read_small(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(16 * 1024)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn write_alpn_challenge(dir: &Path, domain: &str, digest: &[u8]) -> Result<PathBuf, AcmeError> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])
        .map_err(|e| AcmeError::Config(format!("acme.domains: {domain}: {e}")))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| AcmeError::Order {
        what: "making the tls-alpn-01 key",
        message: e.to_string(),
    })?;
    let cert = params.self_signed(&key).map_err(|e| AcmeError::Order {
        what: "making the tls-alpn-01 certificate",
        message: e.to_string(),
    })?;
    let path = alpn_file(dir, domain);
    challenge_subdir(path.parent().unwrap())?;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    // Readable by the proxy's group: the packaged directory is setgid
    // sapphire-proxy (tmpfiles.d), so the file gets that group.
    atomic_write(&path, pem.as_bytes(), 0o640).map_err(io(&path))?;
    Ok(path)
}

fn write_http_challenge(dir: &Path, token: &str, key_auth: &str) -> Result<PathBuf, AcmeError> {
    if !valid_token(token) {
        return Err(AcmeError::Order {
            what: "http-01",
            message: format!("the server sent an odd token {token:?}"),
        });
    }
    let path = http_file(dir, token);
    challenge_subdir(path.parent().unwrap())?;
    atomic_write(&path, key_auth.as_bytes(), 0o644).map_err(io(&path))?;
    Ok(path)
}

/// Makes a challenge subdirectory the proxy can traverse (0750 at least,
/// whatever the umask: the renew unit's is 0077). One that exists (the
/// package's, from tmpfiles.d, setgid sapphire-proxy) is left as it is.
fn challenge_subdir(sub: &Path) -> Result<(), AcmeError> {
    use std::os::unix::fs::PermissionsExt;
    if sub.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(sub).map_err(io(sub))?;
    let mode = std::fs::metadata(sub)
        .map_err(io(sub))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o750 != 0o750 {
        std::fs::set_permissions(sub, std::fs::Permissions::from_mode(mode | 0o750))
            .map_err(io(sub))?;
    }
    Ok(())
}

// ---- certificate facts ----

/// What `cert status` shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub issuer: String,
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl CertInfo {
    pub fn read(path: &Path) -> Result<CertInfo, AcmeError> {
        let der = CertificateDer::from_pem_file(path).map_err(|e| AcmeError::Cert {
            path: path.into(),
            message: e.to_string(),
        })?;
        let bad = |m: String| AcmeError::Cert {
            path: path.into(),
            message: m,
        };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => {
                        names.push(format!("{ip:?}"))
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            issuer: cert.issuer().to_string(),
            names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Two thirds into its lifetime: time to renew.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

// ---- the client ----

/// Where the client reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    /// tls.crt and tls.key (/etc/sapphire/tls).
    pub tls_dir: PathBuf,
    /// Account credentials and the status file (/var/lib/sapphire-acme).
    pub state_dir: PathBuf,
}

impl Paths {
    pub fn cert(&self) -> PathBuf {
        self.tls_dir.join("tls.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.tls_dir.join("tls.key")
    }
    fn status(&self) -> PathBuf {
        self.state_dir.join("status.json")
    }
    fn account(&self) -> PathBuf {
        self.state_dir.join("account.json")
    }
}

/// What the last attempts did (state_dir/status.json).
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Status {
    pub directory: Option<String>,
    pub last_attempt: Option<i64>,
    pub last_error: Option<String>,
    pub last_success: Option<i64>,
    #[serde(default)]
    pub failures: u32,
    /// No new attempt before this (back-off after failures), unless forced.
    pub next_attempt: Option<i64>,
    /// SHA-256 of the certificate the last success installed: a certificate
    /// put there by someone else (self-signed, certbot) is replaced.
    pub installed: Option<String>,
}

impl Status {
    pub fn load(paths: &Paths) -> Status {
        std::fs::read(paths.status())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
    fn save(&self, paths: &Paths) -> Result<(), AcmeError> {
        let path = paths.status();
        std::fs::create_dir_all(&paths.state_dir).map_err(io(&paths.state_dir))?;
        atomic_write(&path, &serde_json::to_vec_pretty(self).unwrap(), 0o644).map_err(io(&path))
    }
}

/// Back-off after `failures` failed attempts: 10 min doubling, at most 12 h.
pub fn back_off(failures: u32) -> Duration {
    let secs = 600u64.saturating_mul(1 << failures.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(12 * 3600))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new certificate was written.
    Renewed(CertInfo),
    /// The certificate is good until `renew_at`.
    NotDue { renew_at: i64 },
    /// Waiting after failures until `next_attempt`.
    BackingOff { next_attempt: i64 },
}

/// True when the certificate in place is one we asked for and not yet due.
fn current_is_good(cfg: &AcmeConfig, paths: &Paths, status: &Status) -> Option<i64> {
    let ours = crate::tls::fingerprint(&paths.cert()).ok()?;
    if status.installed.as_deref() != Some(ours.as_str()) {
        return None;
    }
    let info = CertInfo::read(&paths.cert()).ok()?;
    let covers = cfg.domains.iter().all(|d| info.names.contains(d));
    (covers && now() < info.renew_at()).then(|| info.renew_at())
}

/// One run of the client: renews when due (or `force`), records the
/// attempt in the status file. A failure leaves the certificate in place.
pub async fn renew(cfg: &AcmeConfig, paths: &Paths, force: bool) -> Result<Outcome, AcmeError> {
    // One run at a time (the timer's, the proxy's start-up check, an
    // admin's --force): they share the account, the status and the files.
    std::fs::create_dir_all(&paths.state_dir).map_err(io(&paths.state_dir))?;
    let lock = paths.state_dir.join("renew.lock");
    let _lock = crate::fsutil::LockFile::acquire(&lock).map_err(io(&lock))?;
    let mut status = Status::load(paths);
    if !force {
        if let Some(renew_at) = current_is_good(cfg, paths, &status) {
            return Ok(Outcome::NotDue { renew_at });
        }
        if let Some(next) = status.next_attempt.filter(|&n| n > now()) {
            if status.directory.as_deref() == Some(cfg.directory.as_str()) {
                return Ok(Outcome::BackingOff { next_attempt: next });
            }
        }
    }
    status.last_attempt = Some(now());
    status.directory = Some(cfg.directory.clone());
    let result = issue(cfg, paths).await;
    match &result {
        Ok(_) => {
            status.last_error = None;
            status.last_success = status.last_attempt;
            status.failures = 0;
            status.next_attempt = None;
            status.installed = crate::tls::fingerprint(&paths.cert()).ok();
        }
        Err(e) => {
            status.failures = status.failures.saturating_add(1);
            status.last_error = Some(e.to_string());
            status.next_attempt = Some(now() + back_off(status.failures).as_secs() as i64);
        }
    }
    status.save(paths)?;
    result.map(Outcome::Renewed)
}

async fn account(cfg: &AcmeConfig, paths: &Paths) -> Result<Account, AcmeError> {
    let builder = || match &cfg.directory_ca {
        Some(ca) => Account::builder_with_root(ca).map_err(acme("trusting acme.directory_ca")),
        None => Account::builder().map_err(acme("making the HTTPS client")),
    };
    #[derive(Serialize, Deserialize)]
    struct Saved {
        directory: String,
        credentials: AccountCredentials,
    }
    let file = paths.account();
    if let Some(saved) = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Saved>(&b).ok())
        .filter(|s| s.directory == cfg.directory)
    {
        return builder()?
            .from_credentials(saved.credentials)
            .await
            .map_err(acme("restoring the ACME account"));
    }
    let contact: Vec<&str> = cfg.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(acme("creating an account on acme.directory"))?;
    let saved = Saved {
        directory: cfg.directory.clone(),
        credentials,
    };
    std::fs::create_dir_all(&paths.state_dir).map_err(io(&paths.state_dir))?;
    // The account key: root only, never logged.
    atomic_write(&file, &serde_json::to_vec(&saved).unwrap(), 0o600).map_err(io(&file))?;
    info!(directory = %cfg.directory, id = account.id(), "ACME account created");
    Ok(account)
}

async fn issue(cfg: &AcmeConfig, paths: &Paths) -> Result<CertInfo, AcmeError> {
    let account = account(cfg, paths).await?;
    let ids: Vec<Identifier> = cfg
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(acme("placing the order"))?;
    let mut written = Vec::new();
    let result = async {
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut authz = a.map_err(acme("reading an authorization"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Order {
                        what: "authorization",
                        message: format!("status {other:?}"),
                    })
                }
            }
            let kind = match cfg.challenge {
                Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                Challenge::Http01 => ChallengeType::Http01,
            };
            let mut ch = authz.challenge(kind.clone()).ok_or(AcmeError::Order {
                what: "authorization",
                message: format!("the server offers no {kind:?} challenge"),
            })?;
            let domain = ch.identifier().to_string();
            let key_auth = ch.key_authorization();
            written.push(match cfg.challenge {
                Challenge::TlsAlpn01 => {
                    write_alpn_challenge(&cfg.challenge_dir, &domain, key_auth.digest().as_ref())?
                }
                Challenge::Http01 => {
                    let token = ch.token.clone();
                    write_http_challenge(&cfg.challenge_dir, &token, key_auth.as_str())?
                }
            });
            ch.set_ready()
                .await
                .map_err(acme("answering a challenge"))?;
        }
        let retry = RetryPolicy::default().timeout(Duration::from_secs(90));
        let st = order
            .poll_ready(&retry)
            .await
            .map_err(acme("waiting for validation"))?;
        if st != OrderStatus::Ready {
            let mut why = Vec::new();
            let mut authzs = order.authorizations();
            while let Some(Ok(a)) = authzs.next().await {
                for c in &a.challenges {
                    if let Some(p) = &c.error {
                        why.push(p.to_string());
                    }
                }
            }
            return Err(AcmeError::Order {
                what: "validation",
                message: format!("order is {st:?}: {}", why.join("; ")),
            });
        }
        let key_pem = order.finalize().await.map_err(acme("finalizing"))?;
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(acme("downloading the certificate"))?;
        Ok((key_pem, chain))
    }
    .await;
    for f in written {
        let _ = std::fs::remove_file(f);
    }
    let (key_pem, chain) = result?;
    // Check before replacing anything.
    let tmp = paths.tls_dir.join(".acme-new.crt");
    std::fs::create_dir_all(&paths.tls_dir).map_err(io(&paths.tls_dir))?;
    atomic_write(&tmp, chain.as_bytes(), 0o600).map_err(io(&tmp))?;
    let info = CertInfo::read(&tmp);
    let _ = std::fs::remove_file(&tmp);
    let info = info?;
    // Key first, then the certificate: a reader between the two sees a
    // mismatched pair, which rustls refuses, so the proxy keeps the old one.
    atomic_write(&paths.key(), key_pem.as_bytes(), 0o600).map_err(io(&paths.key()))?;
    atomic_write(&paths.cert(), chain.as_bytes(), 0o600).map_err(io(&paths.cert()))?;
    info!(names = ?info.names, not_after = info.not_after, issuer = %info.issuer, "ACME certificate installed");
    Ok(info)
}

/// Logs (without secrets) and returns what went wrong, for the binaries.
pub fn log_failure(e: &AcmeError) {
    warn!("certificate renewal failed: {e}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Option<AcmeConfig>, AcmeError> {
        toml::from_str::<AcmeFile>(t).unwrap().check()
    }

    #[test]
    fn config_defaults_and_errors_name_the_key() {
        let c = parse(r#"domains = ["chat.example.org"]"#).unwrap().unwrap();
        assert_eq!(c.directory, LETS_ENCRYPT);
        assert_eq!(c.challenge, Challenge::TlsAlpn01);
        assert_eq!(parse("").unwrap(), None);
        for (t, key) in [
            (r#"domains = ["*.example.org"]"#, "acme.domains"),
            (r#"domains = ["Chat.example.org"]"#, "acme.domains"),
            (
                r#"domains = ["a.org"]
                contact = "admin@a.org""#,
                "acme.contact",
            ),
            (
                r#"domains = ["a.org"]
                directory = "http://x/dir""#,
                "acme.directory",
            ),
            (
                r#"domains = ["a.org"]
                directory_ca = "/nonexistent.pem""#,
                "acme.directory_ca",
            ),
            (
                r#"domains = ["a.org"]
                challenge = "dns-01""#,
                "acme.challenge",
            ),
            (r#"contact = "mailto:a@a.org""#, "acme.domains"),
        ] {
            let e = parse(t).unwrap_err().to_string();
            assert!(e.starts_with(key), "{t}: {e}");
        }
    }

    #[test]
    fn names_and_tokens_cannot_escape_the_directory() {
        assert!(valid_domain("chat.example.org"));
        for d in ["", "..", "a/../b", "a..b", "-a.org", "a.org/", "A.org"] {
            assert!(!valid_domain(d), "{d}");
        }
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(!valid_token("../../../../etc/passwd_xxxxxxxx"));
    }

    #[test]
    fn alpn_challenge_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        write_alpn_challenge(dir.path(), "chat.example.org", &[7; 32]).unwrap();
        assert!(alpn_challenge(dir.path(), "chat.example.org").is_some());
        assert!(alpn_challenge(dir.path(), "other.example.org").is_none());
    }

    #[test]
    fn back_off_grows_and_is_bounded() {
        assert_eq!(back_off(1), Duration::from_secs(600));
        assert_eq!(back_off(2), Duration::from_secs(1200));
        assert_eq!(back_off(40), Duration::from_secs(12 * 3600));
    }
}
