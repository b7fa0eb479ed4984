CREATE TABLE notes (
    note_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    note text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per application of an event by the consumer; the tests count them.
CREATE TABLE applied (
    id bigserial PRIMARY KEY,
    note_id text NOT NULL,
    note text NOT NULL,
    message_id text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
