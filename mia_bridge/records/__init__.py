"""One audit record, read one way by every package: its time, its fields, its cells.

- ``timestamps``: the one parser of audit times (``parse_time``, ``epoch_seconds``).
- ``fields``: accessors over an AuditData dict (operation, user, mailbox, client address, apps, the
  MailItemsAccessed folders and items, cmdlet parameters ...).
- ``cells``: decoding of one value as exports hold it (JSON in a string, PowerShell's ``@{...}`` objects,
  a one-element array as a bare object), within depth and NUL limits.

The lowest record layer: it imports the standard library only, so the collector, the evidence store, the
readers, the analysis, the exports, enrichment and the investigation can all use it. The bulk readers' columnar
reads (readers/raw_auditdata_json.py, auditdata_csv.py, turned into rows by analysis/columnar.py) read the
same formats vectorised; tests/records checks that they read times as ``parse_time`` does.
"""
