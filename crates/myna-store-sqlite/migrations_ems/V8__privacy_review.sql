-- The privacy officer (個人情報保護責任者): a role of its own, and the review log, a hash chain
-- of decisions on views made without consent (myna_domain::review::ReviewRecord). One chain
-- for every bureau, as the view log; one decision per view-log entry.
-- The account table is rebuilt to widen its role check (SQLite cannot alter a CHECK); the
-- store turns foreign keys off while migrating and checks them afterwards.
CREATE TABLE account_v8 (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    login TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL
        CHECK (role IN ('dispatcher', 'crew', 'admin', 'hospital', 'privacy_officer')),
    team_id INTEGER REFERENCES team(id),
    hospital_id TEXT,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER,
    UNIQUE (bureau_id, login),
    CHECK ((role = 'hospital') = (hospital_id IS NOT NULL))
);
INSERT INTO account_v8 (id, bureau_id, login, display_name, role, team_id, hospital_id,
                        password_hash, disabled, failed_logins, locked_until_ms)
    SELECT id, bureau_id, login, display_name, role, team_id, hospital_id, password_hash,
           disabled, failed_logins, locked_until_ms
    FROM account;
DROP TABLE account;
ALTER TABLE account_v8 RENAME TO account;

CREATE TABLE review_log (
    seq INTEGER PRIMARY KEY,
    bureau TEXT NOT NULL,
    view_partition INTEGER NOT NULL,
    view_seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE (bureau, view_partition, view_seq)
);
