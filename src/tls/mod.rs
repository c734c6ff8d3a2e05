//! TLS on rustls (no OpenSSL), in Redis's terms: on the client and sentinel
//! ports (`tls-cert-file`, `tls-key-file`, `tls-ca-cert-file` and
//! `tls-auth-clients yes|no|optional`), and towards Redis servers and peer
//! Sentinels ([`ClientTls`], Redis's `tls-replication`).
//!
//! [`ServerTls`] holds the certificate in force and re-reads the files when
//! asked ([`ServerTls::reload`], on SIGHUP): connections already open keep
//! the keys they agreed on, new ones get the new certificate, and a file that
//! does not load leaves the old certificate in place. [`ServerTls::accept`]
//! runs the handshake of one connection (bounded by [`HANDSHAKE_TIMEOUT`])
//! and hands back a [`Stream`] the session drives without waiting.

mod client;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

pub use self::client::{ClientFiles, ClientTls};
pub use self::stream::{Stream, TlsStream};

/// How long a client may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether clients must show a certificate (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthClients {
    /// A certificate signed by the CA is required (Redis's default).
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is asked for; one that is shown must be valid.
    Optional,
}

/// The files a TLS endpoint is built from, re-read on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The certificate chain (PEM), the endpoint's own certificate first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates client certificates are checked against (PEM).
    pub ca: Option<PathBuf>,
    /// Whether clients must show a certificate.
    pub auth_clients: AuthClients,
}

/// Why TLS files could not be turned into an endpoint's configuration: the
/// setting at fault (as in the config file) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TlsError {
    /// The setting whose file is at fault (`tls_cert_file`, …).
    pub field: &'static str,
    /// What is wrong, with the file's path.
    pub reason: String,
}

impl TlsError {
    fn new(field: &'static str, reason: impl Into<String>) -> TlsError {
        TlsError {
            field,
            reason: reason.into(),
        }
    }
}

/// A TLS endpoint's configuration: the one in force, and the files to
/// build the next one from.
#[derive(Debug)]
pub struct ServerTls {
    files: ServerFiles,
    config: ArcSwap<ServerConfig>,
}

impl ServerTls {
    /// Reads the files once.
    pub fn load(files: ServerFiles) -> Result<ServerTls, TlsError> {
        let config = build(&files)?;
        Ok(ServerTls {
            files,
            config: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the files again; on success new connections use them, on
    /// failure the configuration in force stays (the error says why).
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// Runs the server side of the handshake on a new connection.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        let connection = rustls::ServerConnection::new(self.config.load_full())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let handshake = TlsStream::handshake(tcp, connection.into());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream))),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake not completed in time",
            )),
        }
    }
}

/// The crypto provider (aws-lc-rs, rustls's default).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds a server configuration from `files`.
fn build(files: &ServerFiles) -> Result<ServerConfig, TlsError> {
    let certs = certificates("tls_cert_file", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        TlsError::new(
            "tls_key_file",
            format!("{}: {}", files.key.display(), pem_reason(&e, "private key")),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("tls_cert_file", e.to_string()))?;
    let builder = match (files.auth_clients, &files.ca) {
        (AuthClients::No, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::new(
                "tls_ca_cert_file",
                "required to check client certificates (or set tls_auth_clients to no)",
            ));
        }
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls_ca_cert_file", ca)? {
                roots.add(cert).map_err(|e| {
                    TlsError::new("tls_ca_cert_file", format!("{}: {e}", ca.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if auth == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::new("tls_ca_cert_file", format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::new(
            "tls_key_file",
            format!(
                "{} does not go with tls_cert_file: {e}",
                files.key.display()
            ),
        )
    })
}

/// The certificates in a PEM file (at least one).
fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::new(field, format!("{}: {reason}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(pem_reason(&e, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(pem_reason(&e, "certificate")))?;
    if certs.is_empty() {
        return Err(file_error("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// A PEM error in words.
fn pem_reason(error: &rustls_pki_types::pem::Error, what: &str) -> String {
    match error {
        rustls_pki_types::pem::Error::NoItemsFound => format!("no PEM {what} in the file"),
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        other => format!("not a PEM {what}: {other:?}"),
    }
}
