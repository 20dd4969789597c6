//! `enroll`: the tablet's side of 端末登録. It makes its key (owner-only, never sent), files a
//! signing request with ems, shows the comparison code for the admin, and waits for the
//! certificate. Interrupted, it resumes with the same key and request (the poll token waits
//! beside the key, owner-only).

use crate::ems_cli::EnrollArgs;
use anyhow::{Context, Result, bail};
use myna_terminal::ems_client::{CallError, EmsClient};
use myna_wire::terminal::{EnrollBody, EnrollStatus};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A filed request: the code both sides show, and the token to collect the answer with.
pub struct Filed {
    pub code: String,
    pub poll_token: String,
}

/// Where the pending request's poll token waits: beside the key.
fn poll_file(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".enrollment");
    PathBuf::from(name)
}

/// Makes the key at `key` (it must not exist) and files the request with the invitation's
/// secret.
pub async fn file_request(
    client: &EmsClient,
    bureau: &str,
    invite: &str,
    label: &str,
    key: &Path,
) -> Result<Filed> {
    let request = myna_tls::identity::new_request(label)?;
    // The code the admin must see is the one of this key, computed here, not taken from ems.
    let code = myna_tls::identity::check_request(&request.csr_pem)?.comparison_code();
    crate::secret_file::create_new(key, request.key_pem.as_bytes(), 0o600)?;
    let accepted = match client
        .enroll(&EnrollBody {
            bureau: bureau.to_owned(),
            invite: invite.to_owned(),
            label: label.to_owned(),
            csr_pem: request.csr_pem,
        })
        .await
    {
        Ok(a) => a,
        Err(e) => {
            // Nothing was filed: the next run starts afresh.
            let _ = std::fs::remove_file(key);
            bail!("ems did not take the request: {e}");
        }
    };
    if accepted.code != code {
        let _ = std::fs::remove_file(key);
        bail!(
            "ems computed the comparison code {} for this tablet's key, whose code is {code}: \
             this is not the request the tablet sent; do not approve it",
            accepted.code
        );
    }
    crate::secret_file::write(
        &poll_file(key),
        format!("{code}\n{}\n", accepted.poll_token).as_bytes(),
    )?;
    Ok(Filed {
        code,
        poll_token: accepted.poll_token,
    })
}

fn pending_request(key: &Path) -> Result<Option<Filed>> {
    let path = poll_file(key);
    if !(key.exists() && path.exists()) {
        return Ok(None);
    }
    crate::secret_file::check_private(&path)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(code), Some(token)) if !token.trim().is_empty() => Ok(Some(Filed {
            code: code.trim().to_owned(),
            poll_token: token.trim().to_owned(),
        })),
        _ => bail!(
            "{} is not a pending request; delete it and the key",
            path.display()
        ),
    }
}

/// What one look at the request found.
pub enum Answer {
    /// The certificate is written to `cert`.
    Approved,
    Pending,
    /// Rejected or lapsed: the key and the request are deleted, so the next run starts afresh.
    Rejected,
}

/// Asks once; on approval writes the certificate and forgets the poll token.
pub async fn collect(client: &EmsClient, filed: &Filed, key: &Path, cert: &Path) -> Result<Answer> {
    match client.enroll_status(&filed.poll_token).await {
        Ok(EnrollStatus::Approved { certificate_pem }) => {
            std::fs::write(cert, certificate_pem)
                .with_context(|| format!("writing {}", cert.display()))?;
            let _ = std::fs::remove_file(poll_file(key));
            Ok(Answer::Approved)
        }
        Ok(EnrollStatus::Pending) => Ok(Answer::Pending),
        Ok(EnrollStatus::Rejected) => {
            let _ = std::fs::remove_file(poll_file(key));
            let _ = std::fs::remove_file(key);
            Ok(Answer::Rejected)
        }
        Err(e @ CallError::Offline(_)) => {
            eprintln!("{e}; asking again");
            Ok(Answer::Pending)
        }
        Err(e) => bail!("{e}"),
    }
}

pub async fn run(args: EnrollArgs) -> Result<ExitCode> {
    if args.cert.exists() {
        bail!(
            "{} exists: this tablet is enrolled (delete it and {} to enroll again)",
            args.cert.display(),
            args.key.display()
        );
    }
    let client =
        EmsClient::without_bearer(&args.ems, crate::tls::client_roots(args.ems_ca.as_deref())?)?;
    let filed = match pending_request(&args.key)? {
        Some(f) => {
            println!("resuming the request filed earlier");
            f
        }
        None => {
            if args.key.exists() {
                bail!(
                    "{} exists but no request is pending for it; delete it to enroll again",
                    args.key.display()
                );
            }
            let invite = match args.invite.as_deref() {
                None => bail!("--invite (or MYNA_ENROLL_INVITE) is needed to file a request"),
                Some("-") => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_owned()
                }
                Some(s) => s.trim().to_owned(),
            };
            if invite.is_empty() {
                bail!("the invitation's secret is empty");
            }
            file_request(&client, &args.bureau, &invite, &args.label, &args.key).await?
        }
    };
    println!(
        "照合コード (comparison code): {}\n\
         Ask an admin of {} to approve this tablet on the admin page (端末登録申請) only if\n\
         it shows the same code. Waiting…",
        filed.code, args.bureau
    );
    let deadline = Instant::now() + Duration::from_secs(args.wait_minutes.saturating_mul(60));
    loop {
        match collect(&client, &filed, &args.key, &args.cert).await? {
            Answer::Approved => {
                // The files must make a working identity before the tablet relies on them.
                crate::tls::client_identity(args.ems_ca.as_deref(), &args.cert, &args.key)?;
                println!(
                    "approved: certificate {} with key {}; start the tablet with \
                     `terminal --cert {} --key {}`",
                    args.cert.display(),
                    args.key.display(),
                    args.cert.display(),
                    args.key.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Answer::Rejected => bail!("the request was rejected, or lapsed; run enroll again"),
            Answer::Pending => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "still not approved after {} minutes; run enroll again with the same --key to \
                 keep waiting",
                args.wait_minutes
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
