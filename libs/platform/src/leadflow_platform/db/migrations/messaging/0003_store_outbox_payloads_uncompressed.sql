-- Outbox payloads are written once, read once by the relay and soon deleted: compressing
-- them (TOAST's default for large values) costs more CPU on the hot path than it saves.
ALTER TABLE outbox ALTER COLUMN payload SET STORAGE EXTERNAL;
