"""PostgreSQL: the connection pool and the migration runner."""

from leadflow_platform.db.migrations_runner import Migration, load_migrations, migrate
from leadflow_platform.db.pool import connect, create_pool

__all__ = ["Migration", "connect", "create_pool", "load_migrations", "migrate"]
