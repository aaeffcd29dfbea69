"""PostgreSQL: engine, tables, repositories, migrations and the embedded server."""
