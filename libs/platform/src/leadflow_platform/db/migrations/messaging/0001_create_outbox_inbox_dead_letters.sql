-- Messaging tables every service schema holds (applied into the service's schema).

-- Transactional outbox: a state change and the event announcing it commit together;
-- the relay publishes unpublished rows with Nats-Msg-Id = message_id and marks them sent.
-- Published rows stay as the record of what was published (for reconciliation).
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    message_id text NOT NULL UNIQUE,
    subject text NOT NULL,
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    tenant_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    publish_attempts integer NOT NULL DEFAULT 0,
    last_error text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Inbox: the messages a consumer has applied, written in the handler's transaction,
-- so a redelivered message is recognised and never applied twice.
CREATE TABLE inbox (
    consumer text NOT NULL,
    message_id text NOT NULL,
    stream_sequence bigint,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Dead letters: messages a consumer gave up on, with the reason, kept for inspection
-- and replay. One row per (consumer, stream sequence).
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    consumer text NOT NULL,
    stream text NOT NULL,
    stream_sequence bigint NOT NULL,
    subject text NOT NULL,
    message_id text,
    tenant_id text,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    payload bytea,
    reason text NOT NULL,
    deliveries integer NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, stream_sequence)
);
