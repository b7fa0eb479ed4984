-- What replaying a lead's lifecycle in event order needs on its row: the event that moved
-- the lead into its current stage by a rule ('' for its first sighting or a manual move), and
-- when (and by which event, '' for a profile, consent or alias message) it was first seen.
ALTER TABLE leads
    ADD COLUMN stage_entered_by text NOT NULL DEFAULT '',
    ADD COLUMN first_seen_at timestamptz,
    ADD COLUMN first_seen_event_id text NOT NULL DEFAULT '';

UPDATE leads AS l SET first_seen_at = t.transitioned_at, first_seen_event_id = t.triggering_event_id
FROM transitions AS t
WHERE t.tenant_id = l.tenant_id AND t.lead_id = l.lead_id AND t.trigger = 'initial';

UPDATE leads AS l SET stage_entered_by = t.triggering_event_id
FROM (
    SELECT DISTINCT ON (tenant_id, lead_id) tenant_id, lead_id, trigger, triggering_event_id
    FROM transitions ORDER BY tenant_id, lead_id, seq DESC
) AS t
WHERE t.tenant_id = l.tenant_id AND t.lead_id = l.lead_id AND t.trigger = 'rule';
