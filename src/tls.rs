//! TLS: loading the certificate and key, and making a self-signed pair when
//! none is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::fsutil::atomic_write;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("TLS key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS certificate and key do not go together: {0}")]
    Config(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Builds the server configuration: TLS 1.2 and 1.3 only, HTTP/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Cert {
            path: cert.into(),
            message: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert.into(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.into(),
            message: "no certificate in the file".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.into(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 fingerprint of the first certificate in a PEM file, as
/// colon-separated upper-case hex (the form browsers show).
pub fn fingerprint(cert: &Path) -> Result<String, TlsError> {
    let der = CertificateDer::from_pem_file(cert).map_err(|e| TlsError::Cert {
        path: cert.into(),
        message: e.to_string(),
    })?;
    let digest = Sha256::digest(der.as_ref());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// How long a generated certificate is valid.
pub const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A generated certificate is made again when it expires within this.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Makes `cert` and `key` (PEM) for `names` unless both exist already and
/// the certificate is good for more than [`RENEW_BEFORE`]: a generated
/// certificate is valid for a year ([`SELF_SIGNED_VALIDITY`]) and made again
/// a month before it expires. Returns true when it created them.
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, TlsError> {
    if cert.exists() && key.exists() {
        let renew_at = SystemTime::now() + RENEW_BEFORE;
        match not_after(cert) {
            // unreadable: leave it to server_config to say what is wrong
            None => return Ok(false),
            Some(t) if t > renew_at => return Ok(false),
            Some(_) => {}
        }
    }
    generate_self_signed(cert, key, names, SELF_SIGNED_VALIDITY)
}

fn generate_self_signed(
    cert: &Path,
    key: &Path,
    names: &[String],
    valid_for: Duration,
) -> Result<bool, TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen_err)?;
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    // a day of slack for clocks behind ours
    params.not_before = now - Duration::from_secs(24 * 3600);
    params.not_after = now + valid_for;
    let key_pair = rcgen::KeyPair::generate().map_err(gen_err)?;
    let generated = params.self_signed(&key_pair).map_err(gen_err)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    atomic_write(key, key_pair.serialize_pem().as_bytes(), 0o600).map_err(io(key))?;
    atomic_write(cert, generated.pem().as_bytes(), 0o644).map_err(io(cert))?;
    Ok(true)
}

/// When the first certificate in a PEM file expires (its `notAfter`).
pub fn not_after(cert: &Path) -> Option<SystemTime> {
    let der = CertificateDer::from_pem_file(cert).ok()?;
    der_not_after(der.as_ref())
}

/// Reads one DER TLV at the start of `d`: (tag, contents, rest).
fn der_tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&first, mut d) = d.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || d.len() < n {
            return None;
        }
        let len = d[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        d = &d[n..];
        len
    };
    if d.len() < len {
        return None;
    }
    Some((tag, &d[..len], &d[len..]))
}

/// `notAfter` of an X.509 certificate (RFC 5280 §4.1).
fn der_not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert, _) = der_tlv(der)?;
    let (_, tbs, _) = der_tlv(cert)?;
    let (tag, _, mut rest) = der_tlv(tbs)?;
    if tag == 0xa0 {
        // [0] version; the serial number follows
        (_, _, rest) = der_tlv(rest)?;
    }
    let (_, _, rest) = der_tlv(rest)?; // signature algorithm
    let (_, _, rest) = der_tlv(rest)?; // issuer
    let (_, validity, _) = der_tlv(rest)?;
    let (_, _, validity) = der_tlv(validity)?; // notBefore
    let (tag, t, _) = der_tlv(validity)?;
    let t = std::str::from_utf8(t).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        // UTCTime: YYMMDDHHMMSS, years 1950–2049
        0x17 if t.len() == 12 => {
            let yy: i64 = t[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &t[2..])
        }
        // GeneralizedTime: YYYYMMDDHHMMSS
        0x18 if t.len() == 14 => (t[..4].parse().ok()?, &t[4..]),
        _ => return None,
    };
    let num = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let days = days_from_civil(year, num(0)?, num(2)?);
    let secs = days * 86_400 + num(4)? * 3600 + num(6)? * 60 + num(8)?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The names a certificate is valid for: the DNS names (lower-case,
/// wildcards as `*.example.org`) and IP addresses of the first
/// certificate's subjectAltName extension.
pub fn certificate_names(cert: &Path) -> Vec<String> {
    CertificateDer::from_pem_file(cert)
        .ok()
        .and_then(|der| der_alt_names(der.as_ref()))
        .unwrap_or_default()
}

fn der_alt_names(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert, _) = der_tlv(der)?;
    let (_, tbs, _) = der_tlv(cert)?;
    let mut rest = tbs;
    // version? serial, signature, issuer, validity, subject, public key,
    // then optional [1] [2] unique ids and [3] extensions
    let mut fields = 0;
    let mut extensions = None;
    while !rest.is_empty() {
        let (tag, body, r) = der_tlv(rest)?;
        rest = r;
        match tag {
            0xa0 => continue,
            0xa3 => extensions = Some(body),
            _ => fields += 1,
        }
    }
    if fields < 6 {
        return None;
    }
    let (_, mut list, _) = der_tlv(extensions?)?;
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
    while !list.is_empty() {
        let (_, ext, r) = der_tlv(list)?;
        list = r;
        let (_, oid, mut e) = der_tlv(ext)?;
        if oid != SAN_OID {
            continue;
        }
        let (mut tag, mut value, r) = der_tlv(e)?;
        if tag == 0x01 {
            // critical flag
            e = r;
            (tag, value, _) = der_tlv(e)?;
        }
        if tag != 0x04 {
            return None;
        }
        let (_, mut names, _) = der_tlv(value)?;
        let mut out = Vec::new();
        while !names.is_empty() {
            let (tag, name, r) = der_tlv(names)?;
            names = r;
            match (tag, name.len()) {
                (0x82, _) => out.push(std::str::from_utf8(name).ok()?.to_ascii_lowercase()),
                (0x87, 4) => {
                    let ip: [u8; 4] = name.try_into().ok()?;
                    out.push(std::net::Ipv4Addr::from(ip).to_string());
                }
                (0x87, 16) => {
                    let ip: [u8; 16] = name.try_into().ok()?;
                    out.push(std::net::Ipv6Addr::from(ip).to_string());
                }
                _ => {}
            }
        }
        return Some(out);
    }
    Some(Vec::new())
}

/// True when `host` (a name or an IP address, no port) is one the
/// certificate `names` cover (a wildcard covers exactly one label).
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|n| match n.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => *n == host,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_loads_and_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        assert!(ensure_self_signed(&c, &k, &names).unwrap());
        let fp = fingerprint(&c).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(!ensure_self_signed(&c, &k, &names).unwrap());
        assert_eq!(fingerprint(&c).unwrap(), fp);
        server_config(&c, &k).unwrap();
    }

    #[test]
    fn generated_certificates_last_a_year_and_are_renewed_before_expiry() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let names = vec!["localhost".to_string()];
        assert!(ensure_self_signed(&c, &k, &names).unwrap());
        let left = not_after(&c)
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        let day = 24 * 3600;
        assert!(
            left > Duration::from_secs(364 * day) && left <= SELF_SIGNED_VALIDITY,
            "{left:?}"
        );
        // not before yesterday: the generated pair is usable at once
        server_config(&c, &k).unwrap();
        // a pair close to expiry is made again, one far from it is kept
        generate_self_signed(&c, &k, &names, Duration::from_secs(10 * day)).unwrap();
        let fp = fingerprint(&c).unwrap();
        assert!(ensure_self_signed(&c, &k, &names).unwrap());
        assert_ne!(fingerprint(&c).unwrap(), fp);
        assert!(!ensure_self_signed(&c, &k, &names).unwrap());
    }

    #[test]
    fn certificate_names_are_read_and_matched() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let names: Vec<String> = ["chat.example.org", "*.Example.net", "127.0.0.1", "::1"]
            .map(String::from)
            .into();
        ensure_self_signed(&c, &k, &names).unwrap();
        let got = certificate_names(&c);
        assert_eq!(
            got,
            ["chat.example.org", "*.example.net", "127.0.0.1", "::1"]
        );
        assert!(covers(&got, "Chat.Example.org"));
        assert!(covers(&got, "a.example.net"));
        assert!(!covers(&got, "example.net"));
        assert!(!covers(&got, "a.b.example.net"));
        assert!(covers(&got, "127.0.0.1"));
        assert!(covers(&got, "::1"));
        assert!(!covers(&got, "evil.example"));
        assert!(certificate_names(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not pem").unwrap();
        let err = server_config(&junk, &junk).unwrap_err().to_string();
        assert!(err.contains("junk"), "{err}");
        let missing = dir.path().join("missing.crt");
        assert!(server_config(&missing, &junk).is_err());
    }
}
