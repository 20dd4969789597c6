//! Signed checkpoints of an audit hash chain. A chain of SHA-256 links shows an edit to whoever
//! trusts the newest hash, but anyone who can write the database can recompute every link. A
//! checkpoint fixes the head (sequence number, hash, time) under an Ed25519 signature whose key
//! is not in the database; `audit verify` then checks the chain against the latest one.
//!
//! One checkpoint is one text line, so a log of them can be appended to, copied and read by
//! anyone: `v1 CHAIN SEQ HEAD AT_MS KEY_ID SIGNATURE` (hex, except the chain and numbers) for a
//! log kept as one chain. A log kept as several chains (one per person or bureau, on
//! PostgreSQL) is checkpointed by `v2` lines of the same fields: SEQ counts the entries of all
//! chains and HEAD is the digest of their heads (`myna_domain::access::heads_digest`), whose
//! moved heads are recorded beside the log.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// The audit chains that are checkpointed. Their names appear in checkpoint lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// The provider's access log.
    ProviderAccess,
    /// ems's view log.
    EmsViews,
}

impl Chain {
    pub const ALL: [Chain; 2] = [Chain::ProviderAccess, Chain::EmsViews];

    pub fn as_str(self) -> &'static str {
        match self {
            Chain::ProviderAccess => "provider-access",
            Chain::EmsViews => "ems-views",
        }
    }

    pub fn parse(s: &str) -> Option<Chain> {
        Chain::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a checkpoint line: {0}")]
    Malformed(&'static str),
    #[error("the checkpoint key is unreadable: {0}")]
    Key(String),
    #[error("the checkpoint was signed by key {found}, not by the key given ({expected})")]
    OtherKey { found: String, expected: String },
    #[error("the checkpoint's signature does not verify: it was altered or forged")]
    BadSignature,
}

/// What a checkpoint's SEQ and HEAD are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `v1`: the head of a log kept as one chain: its last place and that entry's hash.
    OneChain,
    /// `v2`: a log kept as several chains: the entries of all of them, and the digest of their
    /// heads chained to the previous checkpoint's.
    Heads,
    /// `v3`: a log kept as several chains: the entries of all of them, and the digest of every
    /// chain's head chained to nothing, so the checkpoints before it are not needed to replay
    /// the heads (`LOG.heads` compacted).
    HeadsBase,
}

impl Form {
    fn version(self) -> &'static str {
        match self {
            Form::OneChain => "v1",
            Form::Heads => "v2",
            Form::HeadsBase => "v3",
        }
    }
}

/// A signed head of one chain, or of the heads of several (`Form`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub chain: Chain,
    pub form: Form,
    pub seq: i64,
    pub head: [u8; 32],
    pub at_ms: i64,
    /// The first 8 bytes of SHA-256 of the public key, in hex: which key signed.
    pub key_id: String,
    pub signature: Vec<u8>,
}

fn message(chain: Chain, form: Form, seq: i64, head: &[u8; 32], at_ms: i64) -> Vec<u8> {
    let mut m = match form {
        Form::OneChain => b"myna-kyukyu audit checkpoint v1\0".to_vec(),
        Form::Heads => b"myna-kyukyu audit checkpoint v2 heads\0".to_vec(),
        Form::HeadsBase => b"myna-kyukyu audit checkpoint v3 heads base\0".to_vec(),
    };
    m.extend_from_slice(chain.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

/// The key id of a raw Ed25519 public key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

impl SignedCheckpoint {
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.form.version(),
            self.chain.as_str(),
            self.seq,
            hex::encode(self.head),
            self.at_ms,
            self.key_id,
            hex::encode(&self.signature)
        )
    }

    pub fn parse_line(line: &str) -> Result<Self, CheckpointError> {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let [version, chain, seq, head, at_ms, key_id, signature] = f.as_slice() else {
            return Err(CheckpointError::Malformed("seven fields expected"));
        };
        let form = match *version {
            "v1" => Form::OneChain,
            "v2" => Form::Heads,
            "v3" => Form::HeadsBase,
            _ => return Err(CheckpointError::Malformed("unknown version")),
        };
        let hex32 = |s: &str| -> Option<[u8; 32]> { hex::decode(s).ok()?.try_into().ok() };
        Ok(SignedCheckpoint {
            chain: Chain::parse(chain).ok_or(CheckpointError::Malformed("unknown chain"))?,
            form,
            seq: seq
                .parse()
                .ok()
                .filter(|n: &i64| *n > 0)
                .ok_or(CheckpointError::Malformed("sequence number"))?,
            head: hex32(head).ok_or(CheckpointError::Malformed("head hash"))?,
            at_ms: at_ms
                .parse()
                .map_err(|_| CheckpointError::Malformed("time"))?,
            key_id: Some(*key_id)
                .filter(|k| k.len() == 16 && hex::decode(k).is_ok())
                .ok_or(CheckpointError::Malformed("key id"))?
                .to_owned(),
            signature: hex::decode(signature)
                .ok()
                .filter(|s| s.len() == 64)
                .ok_or(CheckpointError::Malformed("signature"))?,
        })
    }

    /// Checks the signature with the raw Ed25519 public key the operator keeps.
    pub fn verify(&self, public_key: &[u8]) -> Result<(), CheckpointError> {
        let expected = key_id(public_key);
        if expected != self.key_id {
            return Err(CheckpointError::OtherKey {
                found: self.key_id.clone(),
                expected,
            });
        }
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(
                &message(self.chain, self.form, self.seq, &self.head, self.at_ms),
                &self.signature,
            )
            .map_err(|_| CheckpointError::BadSignature)
    }
}

/// The signing key (Ed25519, kept as PKCS#8 in a file outside the database).
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
}

impl CheckpointKey {
    /// A new key and its PKCS#8 document, to be written to an owner-only file.
    pub fn generate() -> Result<(Self, Vec<u8>), CheckpointError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| CheckpointError::Key(e.to_string()))?;
        let bytes = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&bytes)?, bytes))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CheckpointError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(|pair| Self { pair })
            .map_err(|e| CheckpointError::Key(e.to_string()))
    }

    /// The raw 32-byte public key, which verifies this key's checkpoints.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn sign(
        &self,
        chain: Chain,
        form: Form,
        seq: i64,
        head: [u8; 32],
        at_ms: i64,
    ) -> SignedCheckpoint {
        let signature = self.pair.sign(&message(chain, form, seq, &head, at_ms));
        SignedCheckpoint {
            chain,
            form,
            seq,
            head,
            at_ms,
            key_id: key_id(&self.public_key()),
            signature: signature.as_ref().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_checkpoint_round_trips_and_verifies_only_as_signed() {
        let (key, pkcs8) = CheckpointKey::generate().unwrap();
        let again = CheckpointKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let cp = key.sign(
            Chain::EmsViews,
            Form::OneChain,
            42,
            [7; 32],
            1_790_000_000_000,
        );
        let line = cp.to_line();
        let parsed = SignedCheckpoint::parse_line(&line).unwrap();
        assert_eq!(parsed, cp);
        assert_eq!(parsed.verify(&key.public_key()), Ok(()));

        // Each field altered in the line breaks the signature (or the key id).
        let mut tampered = parsed.clone();
        tampered.seq = 41;
        assert_eq!(
            tampered.verify(&key.public_key()),
            Err(CheckpointError::BadSignature)
        );
        let mut tampered = parsed.clone();
        tampered.head[0] ^= 1;
        assert_eq!(
            tampered.verify(&key.public_key()),
            Err(CheckpointError::BadSignature)
        );
        let mut tampered = parsed.clone();
        tampered.chain = Chain::ProviderAccess;
        assert_eq!(
            tampered.verify(&key.public_key()),
            Err(CheckpointError::BadSignature)
        );
        let mut tampered = parsed.clone();
        tampered.form = Form::Heads;
        assert_eq!(
            tampered.verify(&key.public_key()),
            Err(CheckpointError::BadSignature),
            "a one-chain head is not taken for a digest of heads"
        );
        let heads = key.sign(Chain::ProviderAccess, Form::Heads, 9, [3; 32], 1);
        assert!(heads.to_line().starts_with("v2 provider-access 9 "));
        assert_eq!(
            SignedCheckpoint::parse_line(&heads.to_line()),
            Ok(heads.clone())
        );
        let base = key.sign(Chain::ProviderAccess, Form::HeadsBase, 9, [3; 32], 1);
        assert!(base.to_line().starts_with("v3 provider-access 9 "));
        assert_eq!(SignedCheckpoint::parse_line(&base.to_line()), Ok(base));
        let mut tampered = heads;
        tampered.form = Form::HeadsBase;
        assert_eq!(
            tampered.verify(&key.public_key()),
            Err(CheckpointError::BadSignature),
            "a chained digest is not taken for a base"
        );
        let mut tampered = parsed.clone();
        tampered.at_ms += 1;
        assert_eq!(
            tampered.verify(&key.public_key()),
            Err(CheckpointError::BadSignature)
        );

        // Another key: refused by its id, and by the signature if the id is forged.
        let (other, _) = CheckpointKey::generate().unwrap();
        assert!(matches!(
            parsed.verify(&other.public_key()),
            Err(CheckpointError::OtherKey { .. })
        ));
        let mut forged = other.sign(
            Chain::EmsViews,
            Form::OneChain,
            42,
            [7; 32],
            1_790_000_000_000,
        );
        forged.key_id = parsed.key_id.clone();
        assert_eq!(
            forged.verify(&key.public_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn malformed_lines_are_refused() {
        for line in [
            "",
            "v3 ems-views 1 00 1 0011223344556677 00",
            "v1 other 1",
            &format!(
                "v1 ems-views 0 {} 1 0011223344556677 {}",
                "00".repeat(32),
                "00".repeat(64)
            ),
            &format!(
                "v1 ems-views 1 {} 1 00112233 {}",
                "00".repeat(32),
                "00".repeat(64)
            ),
            &format!(
                "v1 ems-views 1 {} 1 0011223344556677 {}",
                "00".repeat(31),
                "00".repeat(64)
            ),
        ] {
            assert!(SignedCheckpoint::parse_line(line).is_err(), "{line:?}");
        }
    }

    proptest! {
        #[test]
        fn no_line_makes_the_parser_panic(line in ".{0,400}") {
            let _ = SignedCheckpoint::parse_line(&line);
        }
    }
}
