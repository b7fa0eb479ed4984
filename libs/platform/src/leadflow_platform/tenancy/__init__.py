"""Tenants and their API keys: who is calling, and what they may do."""

from leadflow_platform.tenancy.keys import Principal, Scope
from leadflow_platform.tenancy.store import KeyStore

__all__ = ["KeyStore", "Principal", "Scope"]
