"""Analysis engines: each runs the analysis SQL (``analysis/sql``) over the base tables (``base_tables``).

``embedded`` (DuckDB, in-process, out of core) is the default and needs nothing beyond the package. Another
engine (Spark: ``--engine spark``) adds its name to ``ENGINES`` and its branch in ``api.analyse_base``.
"""

from __future__ import annotations

EMBEDDED = "embedded"
SPARK = "spark"  # engines/spark.py: pip install 'mia-bridge[spark]' and a Java 17 runtime
ENGINES = (EMBEDDED, SPARK)


def is_uri(path: str) -> bool:
    """Whether a path given by the user is a URI that Spark reads or writes itself (``scheme://...``, or
    ``file:/...`` as Hadoop spells a local file) rather than a path on this machine. ``C:\\x`` is a drive
    (a one-letter scheme), and a local file whose name holds a colon (``notes:v2.json``) is a file.
    The one rule for ``--out`` (cli) and for the inputs (engines/spark.py)."""
    scheme, sep, rest = path.partition(":")
    if not sep or len(scheme) < 2 or not (scheme[0].isascii() and scheme[0].isalpha()):
        return False
    if not all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme):
        return False
    return rest.startswith("//") or (scheme.lower() == "file" and rest.startswith("/"))
