//! TLS towards Redis servers and peer Sentinels: the client side, in
//! Redis's terms (`tls-replication`, `tls-client-cert-file`,
//! `tls-client-key-file`, `tls-ca-cert-file`).
//!
//! A server's certificate is always checked against the CA. It is checked
//! against a name when the server is known by one: a host name in the
//! configuration or in what Sentinel reports, or the one name set for every
//! server (`tls_backend_server_name`, for a certificate that names the
//! service). That name is also sent as SNI. A server known only by its IP
//! address is checked as Redis checks its replication peers: the chain, not
//! the name (certificates seldom list the addresses of the nodes they are
//! deployed on, and a failover moves the master to another one).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use super::{Stream, TlsError, TlsStream, certificates, pem_reason, provider};

/// The files TLS towards servers is built from, re-read on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// The CA certificates servers' certificates are checked against (PEM).
    pub ca: PathBuf,
    /// The certificate chain and key shown to servers that ask for one
    /// (Redis's `tls-auth-clients yes`), if any.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The one name every server's certificate is checked against (and sent
    /// as SNI), whatever the server is known by.
    pub server_name: Option<String>,
}

/// The two configurations in force: with a name to check, and without.
#[derive(Debug)]
struct Configs {
    named: Arc<ClientConfig>,
    unnamed: Arc<ClientConfig>,
}

/// TLS towards servers: the configuration in force, and the files to build
/// the next one from.
#[derive(Debug)]
pub struct ClientTls {
    files: ClientFiles,
    configs: ArcSwap<Configs>,
    /// When a refusal by each server was last logged.
    warned: Mutex<HashMap<SocketAddr, Instant>>,
}

/// How often a server's TLS refusals are logged at most.
const WARN_EVERY: Duration = Duration::from_secs(30);

impl ClientTls {
    /// Reads the files once.
    pub fn load(files: ClientFiles) -> Result<ClientTls, TlsError> {
        if let Some(name) = &files.server_name {
            ServerName::try_from(name.clone()).map_err(|_| {
                TlsError::new(
                    "tls_backend_server_name",
                    format!("{name:?} is not a DNS name"),
                )
            })?;
        }
        let configs = build(&files)?;
        Ok(ClientTls {
            files,
            configs: ArcSwap::from_pointee(configs),
            warned: Mutex::default(),
        })
    }

    /// Reads the files again; on success new connections use them, on
    /// failure the configuration in force stays (the error says why).
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = build(&self.files)?;
        self.configs.store(Arc::new(configs));
        Ok(())
    }

    /// Runs the client side of the handshake with the server at `ip`, known
    /// by `name` if it has one (the caller bounds it in time).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        ip: IpAddr,
        name: Option<&str>,
    ) -> io::Result<Stream> {
        let configs = self.configs.load();
        let (config, server_name) = match self.files.server_name.as_deref().or(name) {
            Some(name) => {
                let server_name = ServerName::try_from(name.to_owned())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                (Arc::clone(&configs.named), server_name)
            }
            None => (Arc::clone(&configs.unnamed), ServerName::from(ip)),
        };
        let connection =
            rustls::ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        let stream = TlsStream::handshake(tcp, connection.into()).await?;
        Ok(Stream::Tls(Box::new(stream)))
    }

    /// Counts and logs a connection to `addr` that failed for a TLS reason
    /// (a certificate refused either way, a protocol mismatch); other
    /// failures (refused, timed out, closed) say the server is unreachable
    /// and are not TLS's to report. Logged at most once per server every
    /// 30 seconds (`WARN_EVERY`): links retry every second.
    pub fn report_refusal(&self, addr: SocketAddr, error: &io::Error) {
        let Some(reason) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return;
        };
        metrics::counter!(crate::metrics::TLS_SERVER_REFUSALS).increment(1);
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned
            .get(&addr)
            .is_some_and(|at| now.saturating_duration_since(*at) < WARN_EVERY)
        {
            return;
        }
        warned.retain(|_, at| now.saturating_duration_since(*at) < WARN_EVERY);
        warned.insert(addr, now);
        tracing::warn!(%addr, %reason, "TLS connection to a server refused");
    }
}

/// Builds both client configurations from `files`.
fn build(files: &ClientFiles) -> Result<Configs, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("tls_backend_ca_cert_file", &files.ca)? {
        roots.add(cert).map_err(|e| {
            TlsError::new(
                "tls_backend_ca_cert_file",
                format!("{}: {e}", files.ca.display()),
            )
        })?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| {
            TlsError::new(
                "tls_backend_ca_cert_file",
                format!("{}: {e}", files.ca.display()),
            )
        })?;
    let identity = match &files.identity {
        Some((cert, key)) => Some((
            certificates("tls_client_cert_file", cert)?,
            PrivateKeyDer::from_pem_file(key).map_err(|e| {
                TlsError::new(
                    "tls_client_key_file",
                    format!("{}: {}", key.display(), pem_reason(&e, "private key")),
                )
            })?,
        )),
        None => None,
    };
    let config = |verifier: Arc<dyn ServerCertVerifier>| {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("tls_backend", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match &identity {
            None => Ok(Arc::new(builder.with_no_client_auth())),
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map(Arc::new)
                .map_err(|e| {
                    TlsError::new(
                        "tls_client_key_file",
                        format!("does not go with tls_client_cert_file: {e}"),
                    )
                }),
        }
    };
    Ok(Configs {
        named: config(webpki.clone())?,
        unnamed: config(Arc::new(ChainOnly(webpki)))?,
    })
}

/// Checks a certificate's chain and signatures as webpki does, and accepts
/// it whatever names it lists: for servers known only by IP address.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error
        // means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
