//! TLS as the operator configures it: a listener's certificate and key, whom a client trusts,
//! and `tls dev-ca` / `tls server-cert`, which make the project's development CA and the
//! certificates it issues (keys owner-only from creation).

use anyhow::{Context, Result, bail};
use myna_tls::rustls::{ClientConfig, ServerConfig};
use myna_tls::{Roots, devca};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A listener's certificate chain and key (PEM). Without them the listener must be loopback.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TlsArgs {
    /// The listener's certificate chain (PEM, leaf first).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The listener's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The listener's configuration; with `client_ca`, clients may present certificates that
    /// chain to it (mutual TLS).
    pub fn server(&self, client_ca: Option<&Path>) -> Result<Option<Arc<ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(myna_tls::server_config(cert, key, client_ca)?)),
            (None, None) => {
                anyhow::ensure!(
                    client_ca.is_none(),
                    "client certificates need TLS: give --tls-cert and --tls-key"
                );
                Ok(None)
            }
            _ => bail!("--tls-cert and --tls-key go together"),
        }
    }
}

/// Whom a client trusts: the CA certificates in `file`, or the platform's roots.
pub fn client_roots(file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    Ok(match file {
        Some(path) => myna_tls::client_config(&Roots::File(path.to_owned()), None)?,
        None => myna_tls::platform_client_config()?,
    })
}

/// A client that trusts `roots` (or the platform's) and presents the certificate `cert` with
/// its key `key` (mutual TLS). The key file must be its owner's alone.
pub fn client_identity(roots: Option<&Path>, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>> {
    crate::secret_file::check_private(key)?;
    let roots = match roots {
        Some(path) => Roots::File(path.to_owned()),
        None => Roots::Platform,
    };
    let identity = myna_tls::ClientIdentity {
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    Ok(myna_tls::client_config(&roots, Some(&identity))?)
}

/// Checks that a listener is loopback or has TLS.
pub fn check_listener(
    listener: &tokio::net::TcpListener,
    tls: Option<&Arc<ServerConfig>>,
) -> Result<()> {
    let addr = listener.local_addr()?;
    myna_web::serve::require_tls(addr, tls.map(|c| c.as_ref())).map_err(|e| anyhow::anyhow!(e))
}

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";

/// Today in UTC: the CA's dates are UTC midnights, so a certificate made now is already
/// valid (a Japanese date would be up to 9 hours ahead).
pub fn today() -> devca::Day {
    myna_ems::enroll::utc_today(chrono::Utc::now())
}

/// The development CA in `dir`, made if missing; returns its certificate's path.
pub fn dev_ca(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join(CA_CERT);
    let key = dir.join(CA_KEY);
    both_or_neither(&cert, &key)?;
    if cert.exists() && key.exists() {
        return Ok(cert);
    }
    let ca = devca::new_ca(today())?;
    crate::secret_file::write(&key, ca.key_pem.as_bytes())?;
    std::fs::write(&cert, ca.cert_pem).with_context(|| format!("writing {}", cert.display()))?;
    Ok(cert)
}

/// A server certificate `name.pem` and key `name.key` in `dir`, issued by the CA there for
/// `hosts`; returns their paths.
pub fn server_cert(dir: &Path, name: &str, hosts: &[String]) -> Result<(PathBuf, PathBuf)> {
    let ca_key = std::fs::read_to_string(dir.join(CA_KEY)).with_context(|| {
        format!(
            "reading {} (run `tls dev-ca` first)",
            dir.join(CA_KEY).display()
        )
    })?;
    let issued = devca::issue_server(&ca_key, hosts, today())?;
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    crate::secret_file::write(&key, issued.key_pem.as_bytes())?;
    std::fs::write(&cert, issued.cert_pem)
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key))
}

/// A CA is its certificate and its key: with one missing, making a new pair would silently
/// replace a CA others trust (every tablet's chain), so that is left to the operator.
fn both_or_neither(cert: &Path, key: &Path) -> Result<()> {
    if cert.exists() != key.exists() {
        let (present, missing) = if cert.exists() {
            (cert, key)
        } else {
            (key, cert)
        };
        bail!(
            "{} exists but {} does not: restore it, or move both away to make a new CA",
            present.display(),
            missing.display()
        );
    }
    Ok(())
}

/// The bureau's device CA, which issues the tablets' client certificates on approved
/// enrollments (`ems serve --device-ca-cert/--device-ca-key`).
pub const DEVICE_CA: &str = "device-ca";
/// The provider's organisation CA, which issues each bureau's client certificate naming its
/// organisation (`provider serve --client-ca`).
pub const ORG_CA: &str = "org-ca";

/// A CA `stem.pem` / `stem.key` (owner-only) in `dir` named `title`, made if missing; returns
/// the certificate's and the key's paths.
pub fn named_ca(dir: &Path, stem: &str, title: &str) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    both_or_neither(&cert, &key)?;
    if !(cert.exists() && key.exists()) {
        let ca = devca::new_named_ca(title, today())?;
        crate::secret_file::write(&key, ca.key_pem.as_bytes())?;
        std::fs::write(&cert, ca.cert_pem)
            .with_context(|| format!("writing {}", cert.display()))?;
    }
    Ok((cert, key))
}

/// A client certificate `stem.pem` and key `stem.key` (owner-only) in `dir`, issued by the CA
/// `ca_cert` / `ca_key` for `subject`; returns their paths.
pub fn client_cert(
    ca_cert: &Path,
    ca_key: &Path,
    subject: &myna_tls::identity::ClientSubject,
    dir: &Path,
    stem: &str,
) -> Result<(PathBuf, PathBuf)> {
    let ca_key_pem = crate::secret_file::read_private(ca_key)?;
    let ca_cert_pem = std::fs::read_to_string(ca_cert)
        .with_context(|| format!("reading {}", ca_cert.display()))?;
    let issued = myna_tls::identity::issue_with_key(&ca_cert_pem, &ca_key_pem, subject, today())?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    crate::secret_file::write(&key, issued.key_pem.as_bytes())?;
    std::fs::write(&cert, issued.cert_pem)
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key))
}

#[derive(clap::Subcommand)]
pub enum TlsCommand {
    /// Make a bureau's device CA (device-ca.pem, device-ca.key) in a directory, if missing:
    /// ems issues the tablets' client certificates from it.
    DeviceCa {
        #[arg(long, default_value = "data/tls")]
        dir: PathBuf,
    },
    /// Make the provider's organisation CA (org-ca.pem, org-ca.key), if missing: it issues
    /// each bureau's client certificate.
    OrgCa {
        #[arg(long, default_value = "data/tls")]
        dir: PathBuf,
    },
    /// Issue a bureau's client certificate for the provider from the organisation CA:
    /// ORG.pem and ORG.key in the directory. The certificate's common name is the
    /// organisation id the provider knows it by.
    OrgCert {
        #[arg(long, default_value = "data/tls")]
        dir: PathBuf,
        /// The organisation id (`provider org add`), e.g. kawasaki-fd.
        #[arg(long)]
        org: String,
        /// Its name, e.g. 川崎市消防局.
        #[arg(long)]
        name: String,
    },
    /// Make the development CA (ca.pem, and ca.key owner-only) in a directory, if missing.
    DevCa {
        #[arg(long, default_value = "data/tls")]
        dir: PathBuf,
    },
    /// Issue a server certificate from the development CA: NAME.pem and NAME.key.
    ServerCert {
        #[arg(long, default_value = "data/tls")]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// A host name or IP address the certificate is for (repeat for more).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
}

pub fn run(cmd: TlsCommand) -> Result<std::process::ExitCode> {
    match cmd {
        TlsCommand::DevCa { dir } => {
            let cert = dev_ca(&dir)?;
            println!(
                "development CA: {} (trust it in the browser to open the demo without a warning)",
                cert.display()
            );
        }
        TlsCommand::DeviceCa { dir } => {
            let (cert, key) = named_ca(&dir, DEVICE_CA, "Myna Kyukyu device CA (development)")?;
            println!("device CA: {} and {}", cert.display(), key.display());
        }
        TlsCommand::OrgCa { dir } => {
            let (cert, key) = named_ca(&dir, ORG_CA, "Myna Kyukyu organisation CA (development)")?;
            println!("organisation CA: {} and {}", cert.display(), key.display());
        }
        TlsCommand::OrgCert { dir, org, name } => {
            // The id names the files: no path, no name of the CAs' or servers' own files, and
            // nothing already there is replaced.
            myna_domain::access::check_identifier("organisation id", &org)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if [ORG_CA, DEVICE_CA, "ca", "provider", "ems"].contains(&org.as_str())
                || org.contains(['/', '.'])
            {
                bail!("{org:?} cannot be an organisation id here");
            }
            for ext in ["pem", "key"] {
                let path = dir.join(format!("{org}.{ext}"));
                if path.exists() {
                    bail!("{} exists; move it away first", path.display());
                }
            }
            let subject = myna_tls::identity::ClientSubject {
                common_name: org.clone(),
                organization: name,
            };
            let (cert, key) = client_cert(
                &dir.join(format!("{ORG_CA}.pem")),
                &dir.join(format!("{ORG_CA}.key")),
                &subject,
                &dir,
                &org,
            )?;
            println!("{} and {}", cert.display(), key.display());
        }
        TlsCommand::ServerCert { dir, name, hosts } => {
            let (cert, key) = server_cert(&dir, &name, &hosts)?;
            println!("{} and {}", cert.display(), key.display());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
