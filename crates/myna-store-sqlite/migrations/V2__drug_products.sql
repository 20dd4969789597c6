-- A claim names the product by its レセ電 code. Under a 統一名 several products share one YJ
-- code, so names are kept per product; `drug` (by YJ) stays for records without the code.
CREATE TABLE drug_product (
    receipt_code TEXT PRIMARY KEY,
    yj TEXT NOT NULL,
    name TEXT NOT NULL,
    generic_name TEXT NOT NULL,
    strength TEXT NOT NULL
);

ALTER TABLE dispensing ADD COLUMN receipt_code TEXT;
