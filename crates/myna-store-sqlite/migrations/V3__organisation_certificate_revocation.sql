-- A bureau's client certificate revoked before its end (its key was lost or leaked), without
-- disabling the organisation: its other certificates keep working.
CREATE TABLE organisation_certificate_revocation (
    sha256 TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisation(id),
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
