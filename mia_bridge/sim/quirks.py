"""Collection quirks of Exchange Online that the simulator models, and which of them it shows by default.

The project's rule: the simulator is never kinder than the real service; where the real behaviour is
reported but not documented, it takes the harsher side. So every quirk below that real tenants have
been seen to show, or may show, is ON by default; ``dehydrated`` is a property of a tenant rather than
of the service, and follows ingestion (a dehydrated tenant is typical exactly where ingestion is off).

Sources (see /work/shared/reference/exchange-platform-facts.md, "Real jump hosts and tenants", and
peer-tools.md §7):

- ``plain-cap``: Learn, Search-UnifiedAuditLog: "By default, this cmdlet returns a subset of results
  containing up to 100 records. Use SessionCommand ... ReturnLargeSet to exhaustively search up to
  50,000 results"; plain calls with ``-ResultSize 5000`` reported to stop near 100-120 rows [U].
- ``result-count-echo``: Microsoft-Extractor-Suite issue #199 (Apr 2026): "the ResultCount appears to
  always match the -ResultSize value provided".
- ``unsorted``: Learn: ReturnLargeSet "returns unsorted data"; nothing documents the order of rows
  within a page or ResultIndex order, so rows of a page also arrive in no particular order [harsher].
- ``session-crosstalk``: Goose v2 (cisagov/untitledgoosetool) keeps pages "in case of cross query
  interference" and rejects rows outside the query's bounds when several searches run at once [U].
- ``session-expiry``: Extractor-Suite #129/#199 (sessions that "started all over again"), Hawk #289:
  a session's server-side state can be lost; the next call with its SessionId starts a new search [U].
- ``dehydrated``: ``Get-OrganizationConfig`` ``IsDehydrated``; ``Set-AdminAuditLogConfig`` needs
  ``Enable-OrganizationCustomization`` first (CIPP does this) [S].
"""

from __future__ import annotations

from collections.abc import Iterable

PLAIN_CAP = "plain-cap"
RESULT_COUNT_ECHO = "result-count-echo"
UNSORTED = "unsorted"
SESSION_CROSSTALK = "session-crosstalk"
SESSION_EXPIRY = "session-expiry"
DEHYDRATED = "dehydrated"

ALL = (PLAIN_CAP, RESULT_COUNT_ECHO, UNSORTED, SESSION_CROSSTALK, SESSION_EXPIRY, DEHYDRATED)
# On unless asked otherwise: every reported behaviour of the search service (see the module docstring).
DEFAULT = frozenset({PLAIN_CAP, RESULT_COUNT_ECHO, UNSORTED, SESSION_CROSSTALK, SESSION_EXPIRY})

# A plain call (no SessionId/SessionCommand) returns at most this many rows, whatever -ResultSize says.
PLAIN_CAP_ROWS = 120

DESCRIPTIONS = {
    PLAIN_CAP: f"plain calls (no SessionId) silently return at most {PLAIN_CAP_ROWS} rows whatever -ResultSize",
    RESULT_COUNT_ECHO: "ResultCount echoes -ResultSize instead of the number of matches",
    UNSORTED: "session rows come in no particular order, ResultIndex included",
    SESSION_CROSSTALK: "with concurrent sessions, a page may carry rows of another session's query",
    SESSION_EXPIRY: "a session's server-side state may be lost; its SessionId then starts a new search",
    DEHYDRATED: "the organization is dehydrated: configuration changes need Enable-OrganizationCustomization",
}


def parse(values: Iterable[str], *, ingestion_enabled: bool = True) -> frozenset[str]:
    """Quirk names from the command line (``--quirk``, repeatable, or comma-separated), applied in order.

    No values: the defaults. ``NAME`` alone gives exactly the names listed (``--quirk plain-cap`` is the
    plain cap and nothing else); starting with ``default`` or ``no-NAME`` starts from the defaults
    (``--quirk no-session-crosstalk``: every default but crosstalk); ``none`` clears. Raises
    ``ValueError`` naming an unknown value.
    """
    items = [v.strip().lower() for raw in values for v in raw.split(",") if v.strip()]
    if not items:
        return default_for(ingestion_enabled=ingestion_enabled)
    from_defaults = items[0] == "default" or items[0].startswith("no-")
    chosen = set(default_for(ingestion_enabled=ingestion_enabled)) if from_defaults else set()
    for value in items:
        if value == "default":
            chosen |= default_for(ingestion_enabled=ingestion_enabled)
        elif value in ("none", "kind"):
            chosen.clear()
        elif value.startswith("no-") and value[3:] in ALL:
            chosen.discard(value[3:])
        elif value in ALL:
            chosen.add(value)
        else:
            raise ValueError(f"unknown quirk {value!r}: use one of {', '.join(ALL)}, no-NAME, default or none")
    return frozenset(chosen)


def default_for(*, ingestion_enabled: bool) -> frozenset[str]:
    """The default quirks for a tenant; dehydrated where ingestion is off."""
    return DEFAULT if ingestion_enabled else DEFAULT | {DEHYDRATED}
