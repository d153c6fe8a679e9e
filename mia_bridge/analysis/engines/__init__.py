"""Analysis engines: the same analysis (analysis/sql) over the base tables (analysis/base_tables.py)."""
