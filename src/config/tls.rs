//! The TLS settings: the endpoints' files, and TLS towards servers.

use std::net::SocketAddr;

use super::cli::{Settings, TlsAuthClients};
use super::{ConfigError, invalid, resolve};
use crate::tls::{AuthClients, ClientFiles, ClientTls, ServerFiles, ServerTls};

/// The TLS endpoints (client and sentinel port, at least one) and the
/// files they are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The TLS client endpoint.
    pub listen: Option<SocketAddr>,
    /// The TLS sentinel endpoint (built-in core only).
    pub sentinel_listen: Option<SocketAddr>,
    /// Certificate, key, CA and client authentication, for both.
    pub files: crate::tls::ServerFiles,
}

/// Validates the TLS endpoints' settings, reading their files once so that
/// a bad one stops the start (or `check-config`) with its name.
pub(super) fn endpoints(s: &Settings) -> Result<Option<TlsConfig>, ConfigError> {
    let listen = s
        .tls_listen
        .as_deref()
        .map(|a| resolve("tls_listen", a))
        .transpose()?;
    let sentinel_listen = s
        .tls_sentinel_listen
        .as_deref()
        .map(|a| resolve("tls_sentinel_listen", a))
        .transpose()?;
    if listen.is_none() && sentinel_listen.is_none() {
        if s.tls_backend == Some(true) {
            // The files serve as the certificate shown to servers (and the
            // CA they are checked against), as in Redis.
            return Ok(None);
        }
        for (field, set) in [
            ("tls_cert_file", s.tls_cert_file.is_some()),
            ("tls_key_file", s.tls_key_file.is_some()),
            ("tls_ca_cert_file", s.tls_ca_cert_file.is_some()),
            ("tls_auth_clients", s.tls_auth_clients.is_some()),
        ] {
            if set {
                return Err(invalid(
                    field,
                    "is for TLS: set tls_listen, tls_sentinel_listen or tls_backend as well",
                ));
            }
        }
        return Ok(None);
    }
    let cert = s
        .tls_cert_file
        .clone()
        .ok_or_else(|| invalid("tls_cert_file", "required with a TLS endpoint"))?;
    let key = s
        .tls_key_file
        .clone()
        .ok_or_else(|| invalid("tls_key_file", "required with a TLS endpoint"))?;
    let auth_clients = match s.tls_auth_clients.unwrap_or(TlsAuthClients::Yes) {
        TlsAuthClients::Yes => AuthClients::Yes,
        TlsAuthClients::No => AuthClients::No,
        TlsAuthClients::Optional => AuthClients::Optional,
    };
    let files = ServerFiles {
        cert,
        key,
        ca: s.tls_ca_cert_file.clone(),
        auth_clients,
    };
    ServerTls::load(files.clone()).map_err(|e| invalid(e.field, e.reason))?;
    Ok(Some(TlsConfig {
        listen,
        sentinel_listen,
        files,
    }))
}

/// Validates TLS towards servers (`tls_backend`), reading its files once so
/// that a bad one stops the start (or `check-config`) with its name. As in
/// Redis, the endpoints' certificate and CA serve when the client ones are
/// not set.
pub(super) fn backend(s: &Settings) -> Result<Option<ClientFiles>, ConfigError> {
    if s.tls_backend != Some(true) {
        for (field, set) in [
            (
                "tls_backend_ca_cert_file",
                s.tls_backend_ca_cert_file.is_some(),
            ),
            ("tls_client_cert_file", s.tls_client_cert_file.is_some()),
            ("tls_client_key_file", s.tls_client_key_file.is_some()),
            (
                "tls_backend_server_name",
                s.tls_backend_server_name.is_some(),
            ),
        ] {
            if set {
                return Err(invalid(
                    field,
                    "is for TLS towards servers: set tls_backend as well",
                ));
            }
        }
        return Ok(None);
    }
    let ca = s
        .tls_backend_ca_cert_file
        .clone()
        .or_else(|| s.tls_ca_cert_file.clone())
        .ok_or_else(|| {
            invalid(
                "tls_backend_ca_cert_file",
                "required with tls_backend (or tls_ca_cert_file): servers' certificates are checked against it",
            )
        })?;
    let identity = match (&s.tls_client_cert_file, &s.tls_client_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (Some(_), None) => {
            return Err(invalid(
                "tls_client_key_file",
                "required with tls_client_cert_file",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "tls_client_cert_file",
                "required with tls_client_key_file",
            ));
        }
        (None, None) => s.tls_cert_file.clone().zip(s.tls_key_file.clone()),
    };
    let files = ClientFiles {
        ca,
        identity,
        server_name: s.tls_backend_server_name.clone(),
    };
    ClientTls::load(files.clone()).map_err(|e| invalid(e.field, e.reason))?;
    Ok(Some(files))
}
