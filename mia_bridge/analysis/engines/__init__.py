"""Analysis engines: each runs the analysis SQL (``analysis/sql``) over the base tables (``base_tables``).

``embedded`` (DuckDB, in-process, out of core) is the default and needs nothing beyond the package. Another
engine (Spark: ``--engine spark``) adds its name to ``ENGINES`` and its branch in ``api.analyse_base``.
"""

from __future__ import annotations

EMBEDDED = "embedded"
SPARK = "spark"  # engines/spark.py: pip install 'mia-bridge[spark]' and a Java 17 runtime
ENGINES = (EMBEDDED, SPARK)
