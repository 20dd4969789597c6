//! The patient portal's API (閲覧履歴): `POST /v1/portal/challenge` and
//! `POST /v1/portal/access-history`.
//!
//! A person proves they hold the card by having its JPKI user-authentication key sign a
//! challenge (PKCS#1 v1.5 over the SHA-256 DigestInfo of `myna_domain::portal::signed_message`).
//! The provider checks the certificate against its JPKI CA, the challenge, the signature and
//! the card's link and revocation, then answers the person's access-log entries, naming the
//! organisation and never the team or crew member (nor the entry's hash, which is over them).
//!
//! Challenges are stateless: nonce, expiry and an HMAC under a key made at start, so issuing
//! one costs nothing and stores nothing. A challenge is redeemed once; the redeemed ones are
//! kept in memory until they expire. With several provider processes behind one address, a
//! challenge is good only at the process that issued it (another refuses it as invalid), and
//! that process's memory is what refuses its reuse (kept a lifetime past the challenge's
//! expiry).

use crate::body::base64_field;
use crate::{ApiError, CallerAuth, Provider};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use myna_domain::portal::{NONCE_LEN, signed_message};
use myna_store::{ChainPosition, ProviderStore};
use myna_wire::ErrorBody;
use myna_wire::provider::{
    AccessHistoryRequest, AccessHistoryResponse, PortalChallenge, ProviderErrorCode, SeenAccessBody,
};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a challenge may be signed and sent: enough to place the card and type a PIN.
pub const CHALLENGE_LIFETIME_MS: i64 = 5 * 60 * 1000;

/// Most accesses one answer lists (newest first; `more` says there are older ones).
pub const HISTORY_LIMIT: u32 = 1000;

const MAC_LEN: usize = 32;
const CHALLENGE_LEN: usize = NONCE_LEN + 8 + MAC_LEN;

/// Why a challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge was not issued here, or was altered")]
    Invalid,
    #[error("the challenge expired; ask for a new one")]
    Expired,
    #[error("the challenge was already used; ask for a new one")]
    Used,
}

/// Issues and redeems sign-in challenges.
pub struct Challenges {
    key: [u8; 32],
    /// Nonces redeemed, with their expiry (ms), dropped a lifetime after it.
    redeemed: Mutex<HashMap<[u8; NONCE_LEN], i64>>,
}

impl Default for Challenges {
    fn default() -> Self {
        Self::new()
    }
}

impl Challenges {
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Challenges {
            key,
            redeemed: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return [0; MAC_LEN],
        };
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// A fresh challenge: nonce, expiry (ms, big-endian), HMAC of both.
    pub fn issue(&self, now_ms: i64) -> (Vec<u8>, i64) {
        let expires = now_ms.saturating_add(CHALLENGE_LIFETIME_MS);
        let mut c = Vec::with_capacity(CHALLENGE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        c.extend_from_slice(&nonce);
        c.extend_from_slice(&expires.to_be_bytes());
        let mac = self.mac(&c);
        c.extend_from_slice(&mac);
        (c, expires)
    }

    /// Checks a challenge this process issued and has not expired, without redeeming it.
    pub fn check(&self, challenge: &[u8], now_ms: i64) -> Result<[u8; NONCE_LEN], ChallengeError> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(ChallengeError::Invalid);
        }
        let (body, mac) = challenge.split_at(NONCE_LEN + 8);
        let expected = self.mac(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], mac)) {
            return Err(ChallengeError::Invalid);
        }
        let (nonce, expires) = body.split_at(NONCE_LEN);
        let expires = i64::from_be_bytes(expires.try_into().map_err(|_| ChallengeError::Invalid)?);
        if now_ms > expires {
            return Err(ChallengeError::Expired);
        }
        nonce.try_into().map_err(|_| ChallengeError::Invalid)
    }

    /// Redeems a checked challenge: the first redemption succeeds, any other is `Used`.
    pub fn redeem(
        &self,
        nonce: [u8; NONCE_LEN],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), ChallengeError> {
        let mut redeemed = self
            .redeemed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Kept a lifetime past expiry, so a clock stepped back within that does not make a
        // used challenge good again.
        redeemed.retain(|_, exp| exp.saturating_add(CHALLENGE_LIFETIME_MS) >= now_ms);
        if redeemed.insert(nonce, expires_ms).is_some() {
            return Err(ChallengeError::Used);
        }
        Ok(())
    }
}

fn expiry_of(challenge: &[u8]) -> i64 {
    challenge
        .get(NONCE_LEN..NONCE_LEN + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i64::from_be_bytes)
}

/// A challenge for the card to sign. No credential: the patient is not known until the
/// signature is.
#[utoipa::path(
    post,
    path = myna_wire::provider::PORTAL_CHALLENGE_PATH,
    operation_id = "portal_challenge",
    tag = "patient portal",
    responses(
        (status = 200, description = "A challenge, good once, until `expires_at_ms`.", body = PortalChallenge),
    ),
)]
pub async fn challenge<S: ProviderStore, A: CallerAuth<S>>(
    axum::extract::State(p): axum::extract::State<Arc<Provider<S, A>>>,
    Extension(challenges): Extension<Arc<Challenges>>,
) -> Json<PortalChallenge> {
    let (c, expires_at_ms) = challenges.issue((p.clock)().timestamp_millis());
    Json(PortalChallenge {
        challenge: base64::engine::general_purpose::STANDARD.encode(c),
        expires_at_ms,
    })
}

/// The person's accesses, for a signed challenge.
#[utoipa::path(
    post,
    path = myna_wire::provider::PORTAL_HISTORY_PATH,
    operation_id = "portal_access_history",
    tag = "patient portal",
    request_body(content = AccessHistoryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The person's accesses, newest first: the organisation, consent or the exception, the view, and each entry's sequence number in the access log.", body = AccessHistoryResponse),
        (status = 400, description = "`malformed_request`: invalid JSON, missing or unknown field, bad base64.", body = ErrorBody<ProviderErrorCode>),
        (status = 403, description = "`challenge_invalid`, `challenge_expired`, `challenge_used`, or `signature_invalid`: the signature does not verify with the certificate's key.", body = ErrorBody<ProviderErrorCode>),
        (status = 404, description = "`unknown_serial`: no insured person is linked to the certificate.", body = ErrorBody<ProviderErrorCode>),
        (status = 413, description = "`payload_too_large`: body over 64 KiB.", body = ErrorBody<ProviderErrorCode>),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody<ProviderErrorCode>),
        (status = 422, description = "The certificate was refused (`certificate_*`).", body = ErrorBody<ProviderErrorCode>),
        (status = 500, description = "`internal`: stored data is inconsistent (details are logged).", body = ErrorBody<ProviderErrorCode>),
        (status = 503, description = "`unavailable`: the database cannot be reached.", body = ErrorBody<ProviderErrorCode>),
    ),
)]
pub async fn history<S: ProviderStore, A: CallerAuth<S>>(
    axum::extract::State(p): axum::extract::State<Arc<Provider<S, A>>>,
    Extension(challenges): Extension<Arc<Challenges>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AccessHistoryResponse>, ApiError> {
    let req: AccessHistoryRequest = crate::body::json(&headers, body).await?;
    let der = base64_field("certificate", &req.certificate, crate::body::MAX_CERT_B64)?;
    let challenge = base64_field("challenge", &req.challenge, 256)?;
    let signature = base64_field("signature", &req.signature, 1024)?;

    let now = (p.clock)();
    let now_ms = now.timestamp_millis();
    let nonce = challenges.check(&challenge, now_ms)?;
    let cert = p.anchor.validate_auth_cert(&der, now)?;
    cert.verify_sha256_signature(&signed_message(&challenge), &signature)
        .map_err(|_| ApiError::SignatureInvalid)?;
    // Redeemed only once the signature holds, so a stranger cannot spend a patient's
    // challenge.
    challenges.redeem(nonce, expiry_of(&challenge), now_ms)?;
    let person = p.store.card_holder(&cert.serial_hex).await?;
    let (entries, names) = tokio::join!(
        p.store.access_log_for(person, HISTORY_LIMIT + 1),
        p.store.organisation_names()
    );
    let (mut entries, names) = (entries?, names?);
    let more = entries.len() > HISTORY_LIMIT as usize;
    entries.truncate(HISTORY_LIMIT as usize);
    // An entry that no longer matches its hash, or whose link does not match the entry before
    // it in its chain (in this list, or read from the log), is not shown as if it were the
    // log's.
    for (i, (at, e)) in entries.iter().enumerate() {
        let before = ChainPosition {
            partition: at.partition,
            seq: e.seq.saturating_sub(1),
        };
        let prev = match entries.get(i + 1) {
            _ if e.seq <= 1 => Some(myna_domain::access::GENESIS),
            Some((older_at, older)) if *older_at == before => Some(older.hash),
            _ => p.store.access_log_hash(before).await?,
        };
        if prev != Some(e.prev_hash)
            || myna_domain::access::link_hash(e.seq, &e.entry, &e.prev_hash) != e.hash
        {
            return Err(ApiError::Internal(format!(
                "access-log entry {at:?} does not match its hash or its chain"
            )));
        }
    }
    let mut accesses = Vec::with_capacity(entries.len());
    for (at, e) in entries {
        let seen = myna_domain::portal::SeenAccess::of(&e.entry);
        accesses.push(SeenAccessBody {
            at_ms: seen.at_ms,
            organisation: names
                .get(&seen.organisation_id)
                .cloned()
                .unwrap_or_else(|| seen.organisation_id.clone()),
            organisation_id: seen.organisation_id,
            hospital: seen.hospital,
            consent: seen.consent,
            view: seen.view,
            seq: at.seq,
        });
    }
    // Newest first by the time shown: a hospital's read, logged when its bureau reported it,
    // shows when the hospital read the copy.
    accesses.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.seq.cmp(&a.seq)));
    Ok(Json(AccessHistoryResponse { accesses, more }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No bytes but an issued challenge pass, and any one changed bit of an issued one is
        /// refused as invalid (or, in the expiry, still MAC-checked).
        #[test]
        fn only_the_challenge_as_issued_passes(
            junk in proptest::collection::vec(any::<u8>(), 0..100),
            bit in 0usize..(CHALLENGE_LEN * 8),
        ) {
            let c = Challenges::new();
            prop_assert!(c.check(&junk, 0).is_err());
            let (issued, _) = c.issue(1_000);
            prop_assert!(c.check(&issued, 1_000).is_ok());
            let mut bent = issued.clone();
            bent[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(c.check(&bent, 1_000), Err(ChallengeError::Invalid));
        }
    }

    #[test]
    fn a_challenge_is_good_once_until_it_expires_and_only_where_issued() {
        let c = Challenges::new();
        let (challenge, expires) = c.issue(1_000);
        assert_eq!(expires, 1_000 + CHALLENGE_LIFETIME_MS);
        let nonce = c.check(&challenge, 2_000).unwrap();
        assert_eq!(
            c.check(&challenge, expires + 1),
            Err(ChallengeError::Expired)
        );
        let mut bent = challenge.clone();
        bent[NONCE_LEN] ^= 0x40; // a later expiry, hand-made
        assert_eq!(c.check(&bent, 2_000), Err(ChallengeError::Invalid));
        assert_eq!(
            Challenges::new().check(&challenge, 2_000),
            Err(ChallengeError::Invalid),
            "another process's key"
        );
        assert_eq!(
            c.check(&challenge[..10], 2_000),
            Err(ChallengeError::Invalid)
        );
        assert_eq!(c.redeem(nonce, expires, 2_000), Ok(()));
        assert_eq!(c.redeem(nonce, expires, 3_000), Err(ChallengeError::Used));
        // Redemptions are forgotten a lifetime after they expire (the challenge itself is
        // refused as expired by then), not before.
        let later = expires + CHALLENGE_LIFETIME_MS;
        let (other, exp2) = c.issue(later);
        let n2 = c.check(&other, later).unwrap();
        assert_eq!(c.redeem(n2, exp2, later), Ok(()));
        assert_eq!(
            c.redeemed.lock().unwrap().len(),
            2,
            "kept through the margin"
        );
        let (third, exp3) = c.issue(later + 1);
        let n3 = c.check(&third, later + 1).unwrap();
        assert_eq!(c.redeem(n3, exp3, later + 1), Ok(()));
        assert_eq!(
            c.redeemed.lock().unwrap().len(),
            2,
            "the first one was dropped"
        );
    }
}
