//! Reports the hospitals' reads of crews' copies to each bureau's provider
//! (`POST /v1/hospital-reads`), so the patient's own access history names the hospital as well
//! as the bureau. The reads wait in the outbox the view log fills in the same transaction
//! (`EmsStore::due_hospital_reads`); a report is sent at least once, and the provider logs each
//! hospital once per crew access, so a report sent twice, or a later read, is the one entry.

use crate::{Ems, EmsError};
use myna_domain::hospitals::Registry;
use myna_provider::client::Answer;
use myna_store::ems::{EmsStore, HospitalReadOutcome, PendingHospitalRead};
use myna_wire::provider::{HospitalReadBody, ProviderErrorCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often the outbox is looked at when no read wakes the relay.
pub const RELAY_EVERY: Duration = Duration::from_secs(5);
/// Reads reported in one round.
const ROUND: u32 = 100;
/// The longest wait before a report is tried again.
const MAX_BACKOFF_S: i64 = 300;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayRound {
    pub delivered: u32,
    pub retried: u32,
    pub refused: u32,
}

/// Reports due reads now and every `RELAY_EVERY`, and at once after a hospital's read, for as
/// long as the task runs.
pub async fn relay_hospital_reads_forever<S: EmsStore>(ems: Arc<Ems<S>>) {
    loop {
        match relay_due(&ems).await {
            Ok(round) if round == RelayRound::default() => {}
            Ok(round) => {
                tracing::info!(?round, "hospital reads reported to the provider");
                // A full round leaves more behind (a backlog after an outage): go on at once.
                // Each read it handled is settled or waits its retry, so this cannot spin.
                if round.delivered + round.retried + round.refused >= ROUND {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the hospital-read outbox failed"),
        }
        tokio::select! {
            _ = ems.hospital_reads.notified() => {}
            _ = tokio::time::sleep(RELAY_EVERY) => {}
        }
    }
}

/// Reports every read due now, one round of at most `ROUND`. A bureau whose provider cannot
/// be reached is not asked again in the same round (its other reads wait their turn, and the
/// other bureaus' are not held up by its timeouts).
pub async fn relay_due<S: EmsStore>(ems: &Ems<S>) -> Result<RelayRound, EmsError> {
    let mut round = RelayRound::default();
    let mut unreachable: HashMap<String, String> = HashMap::new();
    for pending in ems.store.due_hospital_reads(ems.now_ms(), ROUND).await? {
        let bureau = pending
            .record
            .as_ref()
            .map_or("", |r| r.bureau.as_str())
            .to_owned();
        let outcome = match unreachable.get(&bureau) {
            Some(error) => retry(ems, &pending, error.clone()),
            None => {
                let (outcome, reached) = report(ems, &pending).await;
                if let (false, HospitalReadOutcome::Retry { error, .. }) = (reached, &outcome) {
                    unreachable.insert(bureau.clone(), error.clone());
                }
                outcome
            }
        };
        match &outcome {
            HospitalReadOutcome::Delivered { .. } => round.delivered += 1,
            HospitalReadOutcome::Retry { error, .. } => {
                round.retried += 1;
                tracing::warn!(%bureau, view = pending.at.seq, %error,
                    "a hospital read was not reported; it will be tried again");
            }
            HospitalReadOutcome::Refused { error } => {
                round.refused += 1;
                tracing::error!(%bureau, view = pending.at.seq, %error,
                    "the provider refused a hospital read for good; it is kept in the outbox");
            }
        }
        ems.store
            .settle_hospital_read(pending.at, ems.now_ms(), outcome)
            .await?;
    }
    Ok(round)
}

/// Tried again after a wait that doubles with each try, up to `MAX_BACKOFF_S`.
fn retry<S: EmsStore>(
    ems: &Ems<S>,
    pending: &PendingHospitalRead,
    error: String,
) -> HospitalReadOutcome {
    let backoff_s = 1i64
        .checked_shl(pending.attempts.min(16))
        .unwrap_or(MAX_BACKOFF_S)
        .min(MAX_BACKOFF_S);
    HospitalReadOutcome::Retry {
        next_try_ms: ems.now_ms().saturating_add(backoff_s * 1000),
        error,
    }
}

/// Sends one read and says how it ended, and whether the provider answered at all.
async fn report<S: EmsStore>(
    ems: &Ems<S>,
    pending: &PendingHospitalRead,
) -> (HospitalReadOutcome, bool) {
    let refused = |error: String| (HospitalReadOutcome::Refused { error }, true);
    let r = match &pending.record {
        Ok(r) => r,
        Err(problem) => return refused(format!("the view-log entry cannot be read: {problem}")),
    };
    let Some(hospital_id) = &r.hospital else {
        return refused("the view-log entry is not a hospital's read".into());
    };
    let hospital = match Registry::shared() {
        Ok(registry) => match registry.get(hospital_id) {
            Some(h) => h.clone(),
            None => return refused(format!("hospital {hospital_id} is not in the registry")),
        },
        Err(e) => {
            return (
                retry(ems, pending, format!("the hospital registry: {e}")),
                true,
            );
        }
    };
    let bureau = match ems.store.bureau(&r.bureau).await {
        Ok(Some(b)) => b,
        Ok(None) => return refused(format!("bureau {} is not held here", r.bureau)),
        Err(e) => return (retry(ems, pending, e.to_string()), true),
    };
    let client = match ems.provider(&bureau) {
        Ok(c) => c,
        Err(e) => return (retry(ems, pending, e.to_string()), false),
    };
    let body = HospitalReadBody {
        access_id: r.provider_access_id,
        incident_ref: r.incident_number.clone(),
        institution_code: hospital.institution_code,
        hospital_name: hospital.name,
        staff: r.crew_member.clone(),
        read_at_ms: r.at_ms,
        ems_view_seq: pending.at.seq,
    };
    match tokio::time::timeout(ems.provider_timeout, client.hospital_read(&body)).await {
        Err(_) => (
            retry(ems, pending, "the provider did not answer in time".into()),
            false,
        ),
        Ok(Err(e)) => (retry(ems, pending, format!("{e:#}")), false),
        Ok(Ok(Answer::Ok(logged))) => (
            HospitalReadOutcome::Delivered {
                provider_access_id: logged.access_id,
            },
            true,
        ),
        Ok(Ok(Answer::Refused { code, message, .. })) => {
            let error = format!("{}: {message}", code.as_str());
            if gives_up(code) {
                refused(error)
            } else {
                (retry(ems, pending, error), true)
            }
        }
    }
}

/// Refusals that a later try cannot change: the provider does not hold the crew's access, or
/// the report itself is wrong. A credential refused, or a provider unavailable, is tried again
/// (the bureau may fix its credential).
fn gives_up(code: ProviderErrorCode) -> bool {
    use ProviderErrorCode as C;
    match code {
        C::UnknownAccess
        | C::HospitalReadLimit
        | C::MalformedRequest
        | C::PayloadTooLarge
        | C::UnsupportedMediaType => true,
        C::Unauthenticated
        | C::ReadTimeAhead
        | C::ViewerOrganisationMismatch
        | C::CertificateMalformed
        | C::CertificateUnsupported
        | C::CertificateUntrusted
        | C::CertificateExpired
        | C::CertificateNotYetValid
        | C::CertificateWrongKeyUsage
        | C::CertificateRevoked
        | C::UnknownSerial
        | C::ChallengeInvalid
        | C::ChallengeExpired
        | C::ChallengeUsed
        | C::SignatureInvalid
        | C::Unavailable
        | C::Internal
        | C::Unknown => false,
    }
}
