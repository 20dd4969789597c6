-- The ems service on PostgreSQL: tenants (bureaus), their people and terminals, incidents as
-- append-only event logs, hospital statuses, handoff copies and the view audit.
--
-- Only portable statements (no sequences, no engine-specific upserts, no extensions):
-- - every id is made by the client (time, then random bits), never by a sequence;
-- - the bureau is the distribution key: every large table carries `bureau_id` as the first
--   column of every primary and unique key, and references its own bureau's rows by
--   (bureau_id, id), so no row can point into another bureau;
-- - `bureau` itself is a small reference table (one row per tenant).
-- Constraints are named: the store reruns a transaction that lost a race for one of the
-- "racing" keys (see RACING_KEYS in src/ems.rs) and reports any other violation.

CREATE TABLE bureau (
    id bigint CONSTRAINT bureau_pkey PRIMARY KEY,
    code text NOT NULL CONSTRAINT bureau_code_key UNIQUE,
    name text NOT NULL,
    provider_url text NOT NULL,
    -- The file (mode 0600) holding the provider credential; the credential is never here.
    provider_credential_file text NOT NULL,
    view_window_s bigint NOT NULL CHECK (view_window_s > 0),
    -- The key of the bureau's patient pseudonyms (32 bytes).
    patient_secret bytea NOT NULL
);

CREATE TABLE station (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    name text NOT NULL,
    CONSTRAINT station_pkey PRIMARY KEY (bureau_id, id),
    CONSTRAINT station_name_key UNIQUE (bureau_id, name)
);

CREATE TABLE team (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    station_id bigint NOT NULL,
    name text NOT NULL,
    CONSTRAINT team_pkey PRIMARY KEY (bureau_id, id),
    CONSTRAINT team_name_key UNIQUE (bureau_id, name),
    FOREIGN KEY (bureau_id, station_id) REFERENCES station (bureau_id, id)
);

CREATE TABLE account (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    login text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL CHECK (role IN ('dispatcher', 'crew', 'admin', 'hospital')),
    team_id bigint,
    -- The registry hospital of hospital staff, set exactly for that role.
    hospital_id text,
    password_hash text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    -- Failed sign-ins in a row and the lock they lead to.
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until_ms bigint,
    CONSTRAINT account_pkey PRIMARY KEY (bureau_id, id),
    CONSTRAINT account_login_key UNIQUE (bureau_id, login),
    FOREIGN KEY (bureau_id, team_id) REFERENCES team (bureau_id, id),
    CHECK ((role = 'hospital') = (hospital_id IS NOT NULL))
);
-- A session is opened for an account named by id alone (the trait gives no bureau there).
CREATE INDEX account_id ON account (id);

CREATE TABLE terminal (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    team_id bigint NOT NULL,
    label text NOT NULL,
    -- A bearer token's hash (bare hex), or 'certificate:' and the certificate's hash for a
    -- terminal bound to a client certificate, which no token's hash can equal.
    token_hash text NOT NULL,
    revoked boolean NOT NULL DEFAULT false,
    cert_sha256 text,
    cert_not_after_ms bigint,
    CONSTRAINT terminal_pkey PRIMARY KEY (bureau_id, id),
    CONSTRAINT terminal_token_key UNIQUE (bureau_id, token_hash),
    CONSTRAINT terminal_cert_key UNIQUE (bureau_id, cert_sha256),
    FOREIGN KEY (bureau_id, team_id) REFERENCES team (bureau_id, id)
);
-- A presented credential names no bureau: plain indexes find it in any.
CREATE INDEX terminal_token ON terminal (token_hash);
CREATE INDEX terminal_cert ON terminal (cert_sha256);

CREATE TABLE session (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    token_hash text NOT NULL,
    account_id bigint NOT NULL,
    terminal_id bigint,
    expires_ms bigint NOT NULL,
    CONSTRAINT session_pkey PRIMARY KEY (bureau_id, token_hash),
    FOREIGN KEY (bureau_id, account_id) REFERENCES account (bureau_id, id),
    FOREIGN KEY (bureau_id, terminal_id) REFERENCES terminal (bureau_id, id)
);
-- A presented session token names no bureau.
CREATE INDEX session_token ON session (token_hash);
CREATE INDEX session_account ON session (bureau_id, account_id);
CREATE INDEX session_terminal ON session (bureau_id, terminal_id);

-- 端末登録の招待: an admin opens one for a team; its one-time secret lets one tablet file a
-- request.
CREATE TABLE enrollment_invite (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    team_id bigint NOT NULL,
    secret_hash text NOT NULL,
    created_ms bigint NOT NULL,
    created_by text NOT NULL,
    expires_ms bigint NOT NULL,
    used_ms bigint,
    CONSTRAINT enrollment_invite_pkey PRIMARY KEY (bureau_id, id),
    CONSTRAINT enrollment_invite_secret_key UNIQUE (bureau_id, secret_hash),
    FOREIGN KEY (bureau_id, team_id) REFERENCES team (bureau_id, id)
);

-- 端末登録申請: a tablet's signing request, waiting for an admin of the bureau.
CREATE TABLE enrollment (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    team_id bigint NOT NULL,
    invite_id bigint NOT NULL,
    label text NOT NULL,
    code text NOT NULL,
    csr_pem text NOT NULL,
    poll_hash text NOT NULL,
    requested_ms bigint NOT NULL,
    requested_from text NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_ms bigint,
    terminal_id bigint,
    certificate_pem text,
    CONSTRAINT enrollment_pkey PRIMARY KEY (bureau_id, id),
    -- An invitation files one request: the backstop of two tablets racing with one secret.
    CONSTRAINT enrollment_invite_key UNIQUE (bureau_id, invite_id),
    CONSTRAINT enrollment_poll_key UNIQUE (bureau_id, poll_hash),
    FOREIGN KEY (bureau_id, team_id) REFERENCES team (bureau_id, id),
    FOREIGN KEY (bureau_id, invite_id) REFERENCES enrollment_invite (bureau_id, id),
    FOREIGN KEY (bureau_id, terminal_id) REFERENCES terminal (bureau_id, id)
);
-- A tablet polls with its secret alone.
CREATE INDEX enrollment_poll ON enrollment (poll_hash);
CREATE INDEX enrollment_state ON enrollment (bureau_id, state);

CREATE TABLE incident (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    id bigint NOT NULL,
    -- 事案番号, e.g. 20261124-0007: unique within the bureau.
    number text NOT NULL,
    -- Denormalised from the log for listing; the log is the truth.
    team_id bigint,
    closed boolean NOT NULL DEFAULT false,
    created_ms bigint NOT NULL,
    CONSTRAINT incident_pkey PRIMARY KEY (bureau_id, id),
    CONSTRAINT incident_number_key UNIQUE (bureau_id, number),
    FOREIGN KEY (bureau_id, team_id) REFERENCES team (bureau_id, id)
);
CREATE INDEX incident_open ON incident (bureau_id, closed, team_id);

-- The last incident number given per bureau and Japan day. Incrementing it with
-- INSERT … ON CONFLICT locks this one row, so numbers are handed out one at a time per bureau
-- and day, without a gap once committed; incident_number_key is the backstop.
CREATE TABLE incident_day (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    day text NOT NULL,
    last_number integer NOT NULL,
    CONSTRAINT incident_day_pkey PRIMARY KEY (bureau_id, day)
);

-- Append-only. An append takes the next seq; two racing appends collide on the primary key
-- (or on the idempotency key) and the loser runs again.
CREATE TABLE incident_event (
    bureau_id bigint NOT NULL,
    incident_id bigint NOT NULL,
    seq integer NOT NULL,
    at_ms bigint NOT NULL,
    device_ms bigint,
    idempotency_key text NOT NULL,
    -- The domain's Actor and EventKind as JSON.
    actor text NOT NULL,
    kind text NOT NULL,
    CONSTRAINT incident_event_pkey PRIMARY KEY (bureau_id, incident_id, seq),
    CONSTRAINT incident_event_key_key UNIQUE (bureau_id, incident_id, idempotency_key),
    FOREIGN KEY (bureau_id, incident_id) REFERENCES incident (bureau_id, id)
);

-- The current status per hospital; `status` is the domain's HospitalStatus as JSON.
CREATE TABLE hospital_status (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    hospital_id text NOT NULL,
    status text NOT NULL,
    updated_ms bigint NOT NULL,
    account_id bigint NOT NULL,
    CONSTRAINT hospital_status_pkey PRIMARY KEY (bureau_id, hospital_id),
    FOREIGN KEY (bureau_id, account_id) REFERENCES account (bureau_id, id)
);

-- Every change, append-only.
CREATE TABLE hospital_status_log (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    hospital_id text NOT NULL,
    seq bigint NOT NULL,
    status text NOT NULL,
    updated_ms bigint NOT NULL,
    account_id bigint NOT NULL,
    CONSTRAINT hospital_status_log_pkey PRIMARY KEY (bureau_id, hospital_id, seq),
    FOREIGN KEY (bureau_id, account_id) REFERENCES account (bureau_id, id)
);

-- What the crew saw, per patient and view, for the destination hospital.
CREATE TABLE handoff_snapshot (
    bureau_id bigint NOT NULL,
    incident_id bigint NOT NULL,
    patient text NOT NULL,
    view text NOT NULL,
    patient_number integer NOT NULL,
    saved_ms bigint NOT NULL,
    snapshot text NOT NULL,
    CONSTRAINT handoff_snapshot_pkey PRIMARY KEY (bureau_id, incident_id, patient, view),
    FOREIGN KEY (bureau_id, incident_id) REFERENCES incident (bureau_id, id)
);

-- The view audit. A view record names its bureau by code (the trait's ViewRecord.bureau, also
-- its organisation id at the provider), and a record may name a bureau this database does not
-- hold, so the code, not bureau.id, is this table's distribution key.
-- Interim: one chain for all bureaus (the suite's contract); partitioning it by bureau follows
-- the provider's ChainPosition change. Appends are serialised on the chain's head row; the
-- primary key is the backstop.
CREATE TABLE view_log (
    bureau text NOT NULL,
    seq bigint NOT NULL,
    entry text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT view_log_pkey PRIMARY KEY (bureau, seq)
);
-- The chain is walked and checkpoints are found by seq alone.
CREATE INDEX view_log_seq ON view_log (seq);

-- The head of each view-log chain (seq 0 and no hash while it is empty). Interim: the one
-- chain 'all'.
CREATE TABLE view_log_head (
    chain text CONSTRAINT view_log_head_pkey PRIMARY KEY,
    seq bigint NOT NULL,
    hash bytea
);
INSERT INTO view_log_head (chain, seq, hash) VALUES ('all', 0, NULL);
