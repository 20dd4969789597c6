//! Who is calling: a registered terminal (its client certificate under a device CA, or else a
//! bearer token; checked against the store on every request so a revocation bites on the next
//! one), the crew member signed in on it, or a dispatcher or admin in a browser (session
//! cookie). Passwords are argon2id PHC strings.

use crate::Ems;
use crate::error::EmsError;
use crate::wire::CREW_SESSION_HEADER;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use myna_store::ems::{Account, Bureau, EmsStore, Role, Session, Team, Terminal};
use myna_store::hash_secret;
use myna_web::serve::PeerCertificate;

/// Name of the browser session cookie over plain HTTP (loopback).
pub const SESSION_COOKIE: &str = "ems_session";
/// Its name over TLS: the `__Host-` prefix makes the browser accept it only with `Secure`,
/// `Path=/` and no `Domain`, so no sibling site can set or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-ems_session";

/// Hashes a password for storage (argon2id, the crate's default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, EmsError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EmsError::Malformed(format!("password hash: {e}")))
}

/// Checks a password against a stored PHC string; an unreadable hash never matches.
pub fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A dummy PHC string to verify against when the login is unknown, so the answer takes as long
/// as for a wrong password.
pub(crate) fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Qh6zq7P9ZkGhJ0i1dZ8mKpB1e2iXH7m7c5d0l3QGd5c"
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// What a terminal request presents: its headers (bearer token, crew session) and the client
/// certificate of its TLS connection, if it sent one.
#[derive(Debug, Clone)]
pub struct TerminalRequest {
    pub headers: HeaderMap,
    pub certificate: Option<PeerCertificate>,
}

impl<St: Send + Sync> FromRequestParts<St> for TerminalRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        Ok(TerminalRequest {
            headers: parts.headers.clone(),
            certificate: parts.extensions.get::<PeerCertificate>().cloned(),
        })
    }
}

/// A verified terminal and its bureau and team.
#[derive(Debug, Clone)]
pub struct TerminalCaller {
    pub terminal: Terminal,
    pub bureau: Bureau,
    pub team: Team,
}

/// A terminal with its signed-in crew member.
#[derive(Debug, Clone)]
pub struct CrewCaller {
    pub at: TerminalCaller,
    pub crew: Account,
}

impl<S: EmsStore> Ems<S> {
    /// The terminal behind a request: with a device CA, the one bound to the client
    /// certificate (a bearer token is not enough); without, the one holding the bearer token.
    pub async fn terminal(&self, req: &TerminalRequest) -> Result<TerminalCaller, EmsError> {
        let terminal = if self.device_ca.is_some() {
            // The TLS verifier already checked the chain to the device CA; the binding to a
            // registered terminal is ems's own record of the certificate it issued.
            let cert = req
                .certificate
                .as_ref()
                .ok_or(EmsError::TerminalCertificateRequired)?;
            let fingerprint = hex::encode(myna_tls::identity::certificate_sha256(&cert.0));
            let terminal = self
                .store
                .terminal_by_certificate(&fingerprint)
                .await?
                .ok_or(EmsError::TerminalUnknown)?;
            // Checked per request too: a connection (or a resumed session) opened while the
            // certificate was valid does not outlive it.
            if terminal
                .certificate_not_after_ms
                .is_some_and(|end| self.now_ms() >= end)
            {
                return Err(EmsError::TerminalCertificateExpired);
            }
            terminal
        } else {
            let token = bearer(&req.headers).ok_or(EmsError::TerminalUnknown)?;
            self.store
                .terminal_by_token(&hash_secret(token))
                .await?
                .ok_or(EmsError::TerminalUnknown)?
        };
        if terminal.revoked {
            return Err(EmsError::TerminalRevoked);
        }
        let bureau = self
            .store
            .bureau_by_id(terminal.bureau_id)
            .await?
            .ok_or(EmsError::TerminalUnknown)?;
        let team = self
            .store
            .teams(bureau.id)
            .await?
            .into_iter()
            .find(|t| t.id == terminal.team_id)
            .ok_or(EmsError::TerminalUnknown)?;
        Ok(TerminalCaller {
            terminal,
            bureau,
            team,
        })
    }

    pub async fn crew(&self, req: &TerminalRequest) -> Result<CrewCaller, EmsError> {
        let at = self.terminal(req).await?;
        let token = req
            .headers
            .get(CREW_SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(EmsError::CrewSignedOut)?;
        let session = self
            .store
            .session(&hash_secret(token), self.now_ms())
            .await?
            .ok_or(EmsError::CrewSignedOut)?;
        // A crew session is bound to the terminal it was opened on and to its bureau.
        if session.terminal_id != Some(at.terminal.id)
            || session.account.bureau_id != at.bureau.id
            || session.account.role != Role::Crew
        {
            return Err(EmsError::CrewSignedOut);
        }
        Ok(CrewCaller {
            at,
            crew: session.account,
        })
    }

    /// The browser user behind the session cookie, if any.
    pub async fn browser_session(&self, headers: &HeaderMap) -> Result<Option<Session>, EmsError> {
        // Several values (one planted by a sibling site with a longer path): no session.
        let name = self.session_cookie_name();
        if myna_web::cookies(headers, name).count() > 1 {
            return Ok(None);
        }
        let Some(token) = myna_web::cookie(headers, name) else {
            return Ok(None);
        };
        let session = self
            .store
            .session(&hash_secret(token), self.now_ms())
            .await?;
        Ok(session.filter(|s| s.terminal_id.is_none()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse", &h));
        assert!(!password_matches("correct hose", &h));
        assert!(!password_matches("anything", "not a phc string"));
        assert!(!password_matches("anything", dummy_hash()));
        assert_ne!(hash_password("correct horse").unwrap(), h, "salts differ");
    }
}
