"""`leadflow keys`: a key printed once works; revoked, it does not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from leadflow_platform.db.pool import create_pool
from leadflow_platform.tenancy import KeyStore, Principal, Scope

pytestmark = pytest.mark.integration


def leadflow(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env["LEADFLOW_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "leadflow_platform.cli", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_create_list_revoke(database_url):
    created = leadflow(
        "keys", "create", "--tenant", "371minds", "--scope", "read", "--scope", "ingest",
        "--name", "web tracker", database_url=database_url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("lf_") and len(token.splitlines()) == 1
    key_id = token.split("_")[1]

    pool = await create_pool(database_url, schema="tenancy", application_name="test")
    try:
        store = KeyStore(pool, cache_seconds=0.001)
        assert await store.authenticate(token) == Principal(
            "371minds", key_id, frozenset({Scope.READ, Scope.INGEST})
        )
        assert await store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        secret_column = await pool.fetchval(
            "SELECT encode(secret_sha256, 'hex') FROM tenancy.api_keys"
        )
        assert token.split("_", 2)[2] not in secret_column  # only a hash is stored

        listed = leadflow("keys", "list", database_url=database_url)
        assert key_id in listed.stdout and "371minds" in listed.stdout
        assert token.split("_", 2)[2] not in listed.stdout

        revoked = leadflow("keys", "revoke", key_id, database_url=database_url)
        assert revoked.returncode == 0
        assert await store.authenticate(token) is None
        again = leadflow("keys", "revoke", key_id, database_url=database_url)
        assert again.returncode == 1
    finally:
        await pool.close()


def test_bad_tenant_and_scope_are_refused_with_a_reason(database_url):
    bad_tenant = leadflow("keys", "create", "--tenant", "Not A Slug", database_url=database_url)
    assert bad_tenant.returncode == 2
    assert "tenant id must be" in bad_tenant.stdout + bad_tenant.stderr
    bad_scope = leadflow("keys", "create", "--tenant", "acme", "--scope", "root",
                         database_url=database_url)  # fmt: skip
    assert bad_scope.returncode == 2
    assert "invalid choice: 'root'" in bad_scope.stderr


def test_without_a_database_the_command_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env["LEADFLOW_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "leadflow_platform.cli", "keys", "list"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "make up" in result.stderr and "LEADFLOW_DATABASE_URL" in result.stderr
