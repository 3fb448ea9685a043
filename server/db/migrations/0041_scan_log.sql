-- scans is an append-only log written at the rate terminals scan. Its foreign key to terminals made every row
-- look its terminal up and lock it FOR KEY SHARE (on the terminal row hot with every other scan of that
-- terminal). Terminal ids come from verified terminal tokens, and terminals are disabled, never deleted.
ALTER TABLE scans DROP CONSTRAINT scans_terminal_id_fkey;
