-- Decisions store a compact audit record (api/audit.py: the notable rules only; the rest of
-- the trace is rebuilt from the configuration version and the stored snapshot when read).
-- 1: the whole RouteDecision trace (records written before); 2: compact.
ALTER TABLE decisions ADD COLUMN record_format smallint NOT NULL DEFAULT 1;
