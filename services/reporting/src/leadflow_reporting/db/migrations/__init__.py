"""The reporting schema, forward-only."""
