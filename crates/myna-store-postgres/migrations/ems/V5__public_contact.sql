-- The bureau's public page (/public/<code>) names whom citizens contact about マイナ救急;
-- set by `ems set-public-contact`. Empty: the page names the bureau itself.
ALTER TABLE bureau ADD COLUMN public_contact text NOT NULL DEFAULT '';
