-- A tablet may prove itself with a client certificate (mutual TLS), bound here by the
-- certificate's SHA-256; such a terminal's token_hash is 'certificate:' and that hash, which
-- no bearer token's hash (bare hex) can equal (the column is NOT NULL since schema 1).
ALTER TABLE terminal ADD COLUMN cert_sha256 TEXT;
CREATE UNIQUE INDEX terminal_cert ON terminal (cert_sha256);

-- 端末登録申請: a tablet's signing request, waiting for an admin of the bureau.
CREATE TABLE enrollment (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
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
