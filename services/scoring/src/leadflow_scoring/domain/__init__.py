"""Pure scoring logic: no grpc, nats, asyncpg or protobuf imports.

model      the scoring model as data (DEFAULT_MODEL = DESIGN.md defaults) and its validation
features   a lead's features, kept incrementally from events and rebuildable from history
score      compute_score: five explained components, total, grade, temperature
changes    whether a new score is a change and which thresholds it crossed
decay      when an idle lead's grade or temperature will next drop
lifecycle  stages, legal transitions, automatic rules, transition records
"""
