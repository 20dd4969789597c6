-- 救急統計: one row per incident, what it contributes to the bureau's figures
-- (myna_domain::stats::IncidentFacts of its log). Written in the transaction of every append,
-- so it never disagrees with the log; incidents from before this schema are filled in when the
-- store opens. Intervals are seconds, NULL where an end was not recorded.
CREATE TABLE incident_facts (
    incident_id INTEGER PRIMARY KEY REFERENCES incident(id),
    bureau_id INTEGER NOT NULL REFERENCES bureau(id),
    created_ms INTEGER NOT NULL,
    team_id INTEGER,
    ward TEXT,
    outcome TEXT,
    consent_or_exception INTEGER NOT NULL,
    views INTEGER NOT NULL,
    exception_views INTEGER NOT NULL,
    arrival_contact_s INTEGER,
    contact_vehicle_s INTEGER,
    vehicle_departure_s INTEGER,
    arrival_departure_s INTEGER,
    inquiries INTEGER NOT NULL,
    difficult INTEGER NOT NULL,
    transported INTEGER NOT NULL
) STRICT;
CREATE INDEX incident_facts_time ON incident_facts (bureau_id, created_ms);
