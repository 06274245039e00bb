"""PostgreSQL: the system of record (tables, repositories, migrations)."""
