-- Patients are named by a keyed hash of their card's serial; the key is the bureau's own.
ALTER TABLE bureau ADD COLUMN patient_secret BLOB;
UPDATE bureau SET patient_secret = randomblob(32) WHERE patient_secret IS NULL;
