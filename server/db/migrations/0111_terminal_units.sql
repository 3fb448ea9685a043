-- The staff unit a terminal serves (`clinic:guangde-people-1`), set when the operator registers it; scan events
-- carry it to the mini-app bound to the terminal's scene. NULL: registered without one.
ALTER TABLE terminals ADD COLUMN unit text CHECK (unit IS NULL OR unit ~ '^[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
