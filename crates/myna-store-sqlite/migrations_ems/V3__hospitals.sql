-- Hospital staff accounts, hospitals' acceptance statuses and the handoff copies.
-- The account table is rebuilt to widen its role check (SQLite cannot alter a CHECK); the
-- store turns foreign keys off while migrating and checks them afterwards.
CREATE TABLE account_v3 (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    login TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('dispatcher', 'crew', 'admin', 'hospital')),
    team_id INTEGER REFERENCES team(id),
    hospital_id TEXT,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    UNIQUE (bureau_id, login),
    CHECK ((role = 'hospital') = (hospital_id IS NOT NULL))
);
INSERT INTO account_v3 (id, bureau_id, login, display_name, role, team_id, hospital_id,
                        password_hash, disabled)
    SELECT id, bureau_id, login, display_name, role, team_id, NULL, password_hash, disabled
    FROM account;
DROP TABLE account;
ALTER TABLE account_v3 RENAME TO account;

-- The current status per hospital; `status` is the domain's HospitalStatus as JSON.
CREATE TABLE hospital_status (
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    hospital_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    account_id INTEGER NOT NULL REFERENCES account(id),
    PRIMARY KEY (bureau_id, hospital_id)
) WITHOUT ROWID;

-- Every change, append-only.
CREATE TABLE hospital_status_log (
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    hospital_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    account_id INTEGER NOT NULL REFERENCES account(id),
    PRIMARY KEY (bureau_id, hospital_id, seq)
) WITHOUT ROWID;

-- What the crew saw, per patient and view, for the destination hospital.
CREATE TABLE handoff_snapshot (
    incident_id INTEGER NOT NULL REFERENCES incident(id),
    patient TEXT NOT NULL,
    view TEXT NOT NULL,
    patient_number INTEGER NOT NULL,
    saved_ms INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    PRIMARY KEY (incident_id, patient, view)
) WITHOUT ROWID;
