-- The ems service's database: tenants, people, terminals, incidents, view audit.
CREATE TABLE bureau (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    provider_url TEXT NOT NULL,
    provider_token TEXT NOT NULL,
    view_window_s INTEGER NOT NULL CHECK (view_window_s > 0)
);

CREATE TABLE station (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    name TEXT NOT NULL,
    UNIQUE (bureau_id, name)
);

CREATE TABLE team (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    station_id INTEGER NOT NULL REFERENCES station(id),
    name TEXT NOT NULL,
    UNIQUE (bureau_id, name)
);

CREATE TABLE account (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    login TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('dispatcher', 'crew', 'admin')),
    team_id INTEGER REFERENCES team(id),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    UNIQUE (bureau_id, login)
);

CREATE TABLE terminal (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    team_id INTEGER NOT NULL REFERENCES team(id),
    label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE session (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account(id),
    terminal_id INTEGER REFERENCES terminal(id),
    expires_ms INTEGER NOT NULL
);
CREATE INDEX session_account ON session (account_id);
CREATE INDEX session_terminal ON session (terminal_id);

CREATE TABLE incident (
    id INTEGER PRIMARY KEY,
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    number TEXT NOT NULL,
    -- Denormalised from the log for listing; the log is the truth.
    team_id INTEGER REFERENCES team(id),
    closed INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    UNIQUE (bureau_id, number)
);
CREATE INDEX incident_open ON incident (bureau_id, closed, team_id);

CREATE TABLE incident_event (
    incident_id INTEGER NOT NULL REFERENCES incident(id),
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    device_ms INTEGER,
    idempotency_key TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq),
    UNIQUE (incident_id, idempotency_key)
) WITHOUT ROWID;

CREATE TABLE view_log (
    seq INTEGER PRIMARY KEY,
    bureau TEXT NOT NULL,
    entry TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX view_log_bureau ON view_log (bureau, seq);
