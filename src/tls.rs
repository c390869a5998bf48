//! TLS: loading the certificate and key, and making a self-signed pair when
//! none is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Makes `cert` and `key` (PEM) for `names` unless both exist already.
/// Returns true when it created them.
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, TlsError> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    atomic_write(key, generated.key_pair.serialize_pem().as_bytes(), 0o600).map_err(io(key))?;
    atomic_write(cert, generated.cert.pem().as_bytes(), 0o644).map_err(io(cert))?;
    Ok(true)
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
