-- Failed sign-ins in a row and the lock they lead to; a success, the lock's end or an admin
-- clears them.
ALTER TABLE account ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE account ADD COLUMN locked_until_ms INTEGER;

-- The bureau's provider credential leaves the database: the row names the file (mode 0600)
-- that holds it. A credential kept in clear by an older version is dropped here; the operator
-- points the bureau at its file again with `ems set-provider`.
ALTER TABLE bureau ADD COLUMN provider_credential_file TEXT NOT NULL DEFAULT '';
ALTER TABLE bureau DROP COLUMN provider_token;
