from __future__ import annotations

import pytest

from leadflow_platform.db.migrations_runner import MigrationError, load_migrations
from leadflow_platform.db.pool import quote_identifier
from leadflow_platform.service import ServiceSpec, tenancy_migrations


def test_platform_migrations_load_in_order():
    spec = ServiceSpec(name="anything", build=lambda rt: None)
    assert [(m.component, m.version) for m in spec.migrations()] == [
        ("messaging", 1),
        ("messaging", 2),
        ("messaging", 3),
    ]
    assert [(m.component, m.version) for m in tenancy_migrations()] == [("tenancy", 1)]


def test_file_names_and_gaps_are_checked(tmp_path, monkeypatch):
    package = tmp_path / "fake_migrations"
    package.mkdir()
    (package / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(tmp_path))
    (package / "0001_create_a.sql").write_text("CREATE TABLE a (x int);")
    (package / "0003_create_c.sql").write_text("CREATE TABLE c (x int);")
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations("fake", "fake_migrations")
    (package / "0003_create_c.sql").rename(package / "0002_create_c.sql")
    assert [m.name for m in load_migrations("fake", "fake_migrations")] == ["create_a", "create_c"]
    (package / "3_Bad-Name.sql").write_text("")
    with pytest.raises(MigrationError, match="NNNN_verb_object.sql"):
        load_migrations("fake", "fake_migrations")


def test_identifiers_are_plain():
    assert quote_identifier("ingest") == '"ingest"'
    for bad in ("Ingest", "a;drop", "", "x" * 64, '"x"'):
        with pytest.raises(ValueError):
            quote_identifier(bad)
