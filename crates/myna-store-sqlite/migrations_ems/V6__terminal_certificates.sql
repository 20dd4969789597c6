-- A tablet may prove itself with a client certificate (mutual TLS), bound here by the
-- certificate's SHA-256 and its end of validity; such a terminal's token_hash is
-- 'certificate:' and that hash, which no bearer token's hash (bare hex) can equal (the column
-- is NOT NULL since schema 1).
ALTER TABLE terminal ADD COLUMN cert_sha256 TEXT;
ALTER TABLE terminal ADD COLUMN cert_not_after_ms INTEGER;
CREATE UNIQUE INDEX terminal_cert ON terminal (cert_sha256);

-- 端末登録の招待: an admin opens one for a team; its one-time secret lets one tablet file a
-- request.
CREATE TABLE enrollment_invite (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    team_id INTEGER NOT NULL REFERENCES team(id),
    secret_hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER
);

-- 端末登録申請: a tablet's signing request, waiting for an admin of the bureau.
CREATE TABLE enrollment (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    team_id INTEGER NOT NULL REFERENCES team(id),
    invite_id INTEGER NOT NULL UNIQUE REFERENCES enrollment_invite(id),
    label TEXT NOT NULL,
    code TEXT NOT NULL,
    csr_pem TEXT NOT NULL,
    poll_hash TEXT NOT NULL UNIQUE,
    requested_ms INTEGER NOT NULL,
    requested_from TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_ms INTEGER,
    terminal_id INTEGER REFERENCES terminal(id),
    certificate_pem TEXT
);
CREATE INDEX enrollment_bureau ON enrollment (bureau_id, state);
