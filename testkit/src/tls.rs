//! Throw-away TLS material for tests: a CA, a server certificate for
//! `127.0.0.1` and a client certificate, made with the `openssl` command, and
//! a rustls client configuration that trusts the CA and presents the client
//! certificate.
//!
//! Owns: the certificate files (removed on drop). Must not: be trusted
//! outside a test (the keys are written unencrypted to the temp dir).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::redis::{LaunchError, TempDir};

/// A CA, a server certificate (`CN=127.0.0.1`, IP SAN `127.0.0.1`, for
/// server and client use) and a client certificate, each key in PEM.
#[derive(Debug)]
pub struct TestCertificates {
    dir: TempDir,
}

impl TestCertificates {
    /// Makes the CA and both certificates (EC P-256, valid for one day).
    pub fn make() -> Result<TestCertificates, LaunchError> {
        let dir = TempDir::new("tls")?;
        let run = |args: &[&str]| -> Result<(), LaunchError> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| LaunchError(format!("cannot run openssl: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(LaunchError(format!(
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )))
            }
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=testkit-ca",
            ],
        ]
        .concat())?;
        for (name, cn, ext) in [
            (
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
            ),
            (
                "client",
                "/CN=testkit-client",
                "extendedKeyUsage=clientAuth\n",
            ),
        ] {
            let (key, csr, pem, cnf) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.cnf"),
            );
            run(&[
                &["req"][..],
                &ec,
                &["-nodes", "-keyout", &key, "-out", &csr, "-subj", cn],
            ]
            .concat())?;
            std::fs::write(dir.path().join(&cnf), ext)
                .map_err(|e| LaunchError(format!("cannot write {cnf}: {e}")))?;
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &cnf,
            ])?;
        }
        Ok(TestCertificates { dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// The server key (PEM, unencrypted).
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The client certificate (PEM).
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client key (PEM, unencrypted).
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls client configuration trusting the CA and presenting the
    /// client certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, LaunchError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| LaunchError(format!("{what}: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.ca()).map_err(|e| bad("CA file", &e))? {
            roots
                .add(cert.map_err(|e| bad("CA certificate", &e))?)
                .map_err(|e| bad("CA certificate", &e))?;
        }
        let chain = CertificateDer::pem_file_iter(self.client_cert())
            .map_err(|e| bad("client certificate", &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("client certificate", &e))?;
        let key =
            PrivateKeyDer::from_pem_file(self.client_key()).map_err(|e| bad("client key", &e))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("client certificate", &e))?;
        Ok(Arc::new(config))
    }
}
