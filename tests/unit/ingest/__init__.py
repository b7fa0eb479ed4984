"""Unit tests of the ingest domain.

A package, so that its module names cannot clash with other services' test modules.
"""
