"""The performance benchmark: ``python -m bench`` (or ``python3 dev.py bench``).

It starts the Flow Service emulator and the gateway as separate processes on a fresh PostgreSQL
database, drives them over HTTP, and prints a table and one JSON line of results. See
docs/performance.md for what each figure means and the latest numbers.
"""
