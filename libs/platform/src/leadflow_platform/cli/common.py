"""What the subcommands share: settings resolved against a running stack."""

from __future__ import annotations

import sys

from leadflow_platform.cli.stack import resolve
from leadflow_platform.settings import Settings, SettingsError


def settings() -> Settings:
    try:
        return resolve(Settings.from_env())
    except SettingsError as exc:
        print(f"leadflow: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def require_database() -> str:
    url = settings().database_url
    if not url:
        print(
            "leadflow: no database: start the suite with `make up` (or `leadflow up`),"
            " or set LEADFLOW_DATABASE_URL",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return url
