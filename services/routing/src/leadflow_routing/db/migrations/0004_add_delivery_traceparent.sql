-- The W3C traceparent of the decision that wrote a delivery: the delivery worker sends it
-- later, in a trace of its own otherwise, so each attempt's span is made a child of it and
-- the webhook receives it too. Empty for deliveries written outside any trace.
ALTER TABLE deliveries ADD COLUMN traceparent text NOT NULL DEFAULT '';
