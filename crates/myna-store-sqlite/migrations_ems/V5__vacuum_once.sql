-- A marker: a file that schema 4 migrated before the store turned secure_delete on may keep
-- the dropped provider credential in free pages; opening it at this version vacuums it once.
PRAGMA user_version = 5;
