//! Certificates for the TLS tests, made fresh in a temporary directory: two
//! unrelated CAs, and from each a server certificate (for `localhost` and
//! 127.0.0.1) and a client certificate, as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA's files: `<name>-ca.crt`, and `<name>-server.{crt,key}`,
/// `<name>-client.{crt,key}` signed by it.
pub struct Pki {
    dir: tempfile::TempDir,
    /// CA `a`, to sign more certificates with.
    a: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Two CAs, `a` and `b`, each with a server and a client certificate.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("sentinel-proxy-tls-")
            .tempdir()
            .expect("temporary directory for certificates");
        let a = issue(dir.path(), "a");
        issue(dir.path(), "b");
        Pki { dir, a }
    }

    /// The path of one of the files, e.g. `file("a-server.crt")`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The TLS files of a `redis-server` with CA `ca`'s certificates.
    pub fn redis(&self, ca: &str) -> super::redis::RedisTls {
        super::redis::RedisTls {
            cert: self.file(&format!("{ca}-server.crt")),
            key: self.file(&format!("{ca}-server.key")),
            ca: self.file(&format!("{ca}-ca.crt")),
            client_cert: self.file(&format!("{ca}-client.crt")),
            client_key: self.file(&format!("{ca}-client.key")),
        }
    }

    /// The TLS files of a `redis-server` whose certificate, signed by CA
    /// `a`, names only the host `name` (no IP address), written as
    /// `<name>.{crt,key}`.
    pub fn redis_named(&self, name: &str) -> super::redis::RedisTls {
        let mut server = CertificateParams::new(vec![name.to_owned()]).expect("server name");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = server.signed_by(&key, &self.a).expect("server certificate");
        let (cert_file, key_file) = (
            self.file(&format!("{name}.crt")),
            self.file(&format!("{name}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).expect("write certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        super::redis::RedisTls {
            cert: cert_file,
            key: key_file,
            ..self.redis("a")
        }
    }

    /// The TLS lines of a sentinel.conf: `tls-port` with CA `a`'s server
    /// and client certificates, and `tls-replication yes`.
    pub fn sentinel_lines(&self, tls_port: u16) -> Vec<String> {
        let path = |name: &str| self.file(name).display().to_string();
        vec![
            format!("tls-port {tls_port}"),
            format!("tls-cert-file {}", path("a-server.crt")),
            format!("tls-key-file {}", path("a-server.key")),
            format!("tls-ca-cert-file {}", path("a-ca.crt")),
            format!("tls-client-cert-file {}", path("a-client.crt")),
            format!("tls-client-key-file {}", path("a-client.key")),
            "tls-replication yes".to_owned(),
        ]
    }

    /// The proxy flags of TLS towards servers whose certificates CA `ca`
    /// signed, showing CA `ca`'s client certificate.
    pub fn backend_args(&self, ca: &str) -> Vec<String> {
        vec![
            "--tls-backend".into(),
            "--tls-ca-cert-file".into(),
            self.file(&format!("{ca}-ca.crt")).display().to_string(),
            "--tls-client-cert-file".into(),
            self.file(&format!("{ca}-client.crt")).display().to_string(),
            "--tls-client-key-file".into(),
            self.file(&format!("{ca}-client.key")).display().to_string(),
        ]
    }

    /// The proxy flags of a TLS endpoint on `listen` with CA `ca`'s server
    /// certificate, checking clients against CA `ca` (`auth` is
    /// `tls-auth-clients`).
    pub fn endpoint_args(&self, listen: std::net::SocketAddr, ca: &str, auth: &str) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            listen.to_string(),
            "--tls-cert-file".into(),
            self.file(&format!("{ca}-server.crt")).display().to_string(),
            "--tls-key-file".into(),
            self.file(&format!("{ca}-server.key")).display().to_string(),
            "--tls-ca-cert-file".into(),
            self.file(&format!("{ca}-ca.crt")).display().to_string(),
            "--tls-auth-clients".into(),
            auth.into(),
        ]
    }
}

/// Writes CA `name` and the certificates it signs into `dir`; returns the CA.
fn issue(dir: &Path, name: &str) -> Issuer<'static, KeyPair> {
    let write = |file: String, text: String| {
        std::fs::write(dir.join(file), text).expect("write certificate file");
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("sentinel-proxy test CA {name}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
    write(format!("{name}-ca.crt"), ca_cert.pem());
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("server names");
    server
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    server
        .distinguished_name
        .push(DnType::CommonName, format!("server {name}"));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    write(format!("{name}-server.crt"), server_cert.pem());
    write(format!("{name}-server.key"), server_key.serialize_pem());

    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
    client
        .distinguished_name
        .push(DnType::CommonName, format!("client {name}"));
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().expect("client key");
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .expect("client certificate");
    write(format!("{name}-client.crt"), client_cert.pem());
    write(format!("{name}-client.key"), client_key.serialize_pem());
    issuer
}
