-- A path item per event, so that paths read one integer instead of evaluating it per row:
-- a page view's page id (> 0; -1 without a page), a custom event's -(100 + name id), any
-- other event -event_type.
ALTER TABLE events ADD COLUMN path_item integer GENERATED ALWAYS AS (
    CASE
        WHEN event_type = 1 AND page_id <> 0 THEN page_id
        WHEN event_type = 24 THEN -(100 + custom_id)
        ELSE -event_type
    END
) STORED;

-- Paths and retention read a tenant's events of a range in time order from this narrow
-- covering index alone (a third of the table's size), replacing the wider one of 0002.
DROP INDEX events_for_sessions;
CREATE INDEX events_for_reports ON events (tenant_id, occurred_at)
    INCLUDE (subject_id, session_key, path_item, event_type, brand_id) WHERE NOT machine;
-- Conversions with a value (retention revenue), read from the index alone.
CREATE INDEX events_with_value ON events (tenant_id, occurred_at)
    INCLUDE (subject_id, event_type, value_units, value_nanos, currency_code)
    WHERE value_units IS NOT NULL AND NOT machine;
