"""The reporting read model and its queries."""
