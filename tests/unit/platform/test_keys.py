from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_platform.tenancy.keys import (
    Principal,
    Scope,
    generate_key,
    hash_secret,
    parse_key,
    parse_scopes,
    validate_tenant_id,
)


def test_generated_key_round_trips_and_hash_is_of_the_secret_only():
    key = generate_key()
    assert parse_key(key.token) == (key.key_id, key.secret)
    assert key.secret_sha256 == hash_secret(key.secret)
    assert key.secret not in key.secret_sha256.hex()
    assert generate_key().token != key.token


@given(st.text(max_size=80))
def test_parse_key_never_raises_and_accepts_only_the_key_shape(text):
    parsed = parse_key(text)
    if parsed is not None:
        assert text.strip() == f"lf_{parsed[0]}_{parsed[1]}"


@pytest.mark.parametrize(
    ("scopes", "required", "allowed"),
    [
        ({Scope.INGEST}, Scope.INGEST, True),
        ({Scope.INGEST}, Scope.READ, False),
        ({Scope.READ}, Scope.INGEST, False),
        ({Scope.READ}, Scope.ADMIN, False),
        ({Scope.ADMIN}, Scope.READ, True),
        ({Scope.ADMIN}, Scope.INGEST, True),
        ({Scope.READ, Scope.INGEST}, Scope.ADMIN, False),
    ],
)
def test_what_a_key_allows(scopes, required, allowed):
    assert Principal("acme", "k", frozenset(scopes)).allows(required) is allowed


def test_scopes_and_tenants_are_validated():
    assert parse_scopes(["Read", "ingest"]) == {Scope.READ, Scope.INGEST}
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes(["write"])
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes([])
    assert validate_tenant_id("371minds") == "371minds"
    for bad in ("", "Acme", "a b", "-acme", "x" * 64):
        with pytest.raises(ValueError):
            validate_tenant_id(bad)


def test_scope_mirrors_the_proto_enum():
    from leadflow.common.v1 import auth_pb2

    for scope in Scope:
        proto_value = auth_pb2.Scope.Value(f"SCOPE_{scope.name}")
        assert Scope.from_proto(proto_value) is scope
    assert Scope.from_proto(auth_pb2.SCOPE_UNSPECIFIED) is None
