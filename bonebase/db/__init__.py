"""PostgreSQL access: the embedded server, connections, pool and migrations.

Queries live in one module per aggregate (``sites``, ``audit``, …) as plain functions that take a
connection; nothing here holds a global connection.
"""

from bonebase.db.engine import connect, database_url, make_pool

__all__ = ["connect", "database_url", "make_pool"]
