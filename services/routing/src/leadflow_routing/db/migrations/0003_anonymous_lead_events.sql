-- Events of a visitor not yet known as a lead are kept under its anonymous id (lead_id '')
-- until ingest.subject.aliased / ingest.subject.identified names the lead; then they count
-- in that lead's recent behaviour.
ALTER TABLE lead_events ADD COLUMN anonymous_id text NOT NULL DEFAULT '';
CREATE INDEX lead_events_by_visitor ON lead_events (tenant_id, anonymous_id) WHERE lead_id = '';
