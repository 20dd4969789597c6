-- A bureau's key revoked before its certificate ends (the key was lost or leaked), without
-- disabling the organisation: its other keys keep working. Keyed by the SHA-256 of the
-- certificate's public key, which a re-encoded signature or a new certificate does not change.
CREATE TABLE organisation_certificate_revocation (
    public_key_sha256 TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisation(id),
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
