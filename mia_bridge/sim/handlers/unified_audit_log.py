"""Search-UnifiedAuditLog with the documented limits and the observed misbehaviour.

Ordering (kept stable, see exchange-platform-facts §4): without -SessionCommand and with
ReturnNextPreviewPage, results are sorted by CreationDate, newest first (ties: last ingested first);
ReturnLargeSet serves the matches in a pseudo-random order fixed per SessionId ("unsorted").
Caps: ResultSize 1..5000 (default 100); ReturnLargeSet 50,000 rows per session, ReturnNextPreviewPage
5,000, and 10,000 once a session switched between the two. Paging state is kept per SessionId on the
tenant (server side, shared by all clients, the oldest forgotten past 256); the same SessionId with
other filters starts a new search. Realism knobs come from TenantConfig; the collection quirks
(plain-cap, result-count-echo, unsorted, session-crosstalk, session-expiry) and their sources are in
sim/quirks.py.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from mia_bridge.sim import quirks
from mia_bridge.sim.handlers._params import Params, binding_error
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, cmdlet
from mia_bridge.sim.tenant import PagingState, Tenant, TenantSession
from mia_bridge.sim.tenant_store import RECORD_TYPE_NAMES, RECORD_TYPES, record_type_code

NAME = "Search-UnifiedAuditLog"
TYPE_NAMES = ["Microsoft.Exchange.Management.SystemConfigurationTasks.UnifiedAuditLogEvent", "System.Object"]
MAX_RESULT_SIZE = 5000
DEFAULT_RESULT_SIZE = 100
LARGE_SET_CAP = 50_000
PREVIEW_CAP = 5_000
SWITCHED_CAP = 10_000
MAX_PAGING_SESSIONS = 256
# session-crosstalk: another search counts as concurrent when it was paged this recently.
CROSSTALK_WINDOW_S = 30.0
_PARAMS = (
    "StartDate", "EndDate", "Operations", "RecordType", "UserIds", "FreeText", "IPAddresses", "ObjectIds",
    "SessionId", "SessionCommand", "ResultSize", "Formatted", "HighCompleteness", "SiteIds", "LegacyFlow",
    "LongerRetentionEnabled",
)
# With ingestion off the service answers BadRequest and no rows (peer-tools §0.6, Hawk #303): a
# non-terminating error, so a script that does not look at the error stream sees an empty result.
INGESTION_OFF_MESSAGE = (
    "BadRequest: audit log search is turned off for this organization (UnifiedAuditLogIngestionEnabled is "
    "False): user and admin activity is not recorded and cannot be searched. Turn it on with "
    "Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true."
)
_TRANSIENT = (
    ("The server is busy. Please retry your request after some time.", "ServerBusyException", "ResourceBusy"),
    ("The operation could not be completed due to a server side error. Please try again later.",
     "ServerSideErrorException", "ResourceUnavailable"),
    ("Request was throttled. Please retry after 30 seconds.", "ThrottlingException", "LimitsExceeded"),
)


@cmdlet(NAME)
def search_unified_audit_log(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    tenant = session.tenant
    p = Params(NAME, params, _PARAMS)
    p.require("StartDate", "EndDate")
    start, end = p.date("StartDate"), p.date("EndDate")
    assert start is not None and end is not None
    if end < start:
        raise SimCmdletError(
            "The end date must be later than the start date.", category="InvalidArgument",
            error_id=f"InvalidDateRange,{NAME}", exception_type="System.ArgumentException",
        )
    size = _result_size(p)
    record_types = _record_types(p)
    command = _session_command(p)
    session_id = p.text("SessionId")
    if not tenant.ingestion_enabled:
        return SimOutput(errors=[SimCmdletError(
            INGESTION_OFF_MESSAGE, category="InvalidOperation", error_id=f"BadRequest,{NAME}",
            exception_type="Microsoft.Exchange.Management.RestApiClient.RestClientException",
        )])
    maybe_fail(tenant)
    filters: dict[str, Any] = {
        "operations": p.texts("Operations"),
        "record_types": record_types,
        "user_ids": p.texts("UserIds"),
        "free_text": p.text("FreeText"),
        "ip_addresses": p.texts("IPAddresses"),
        "object_ids": p.texts("ObjectIds"),
    }
    formatted = p.switch("Formatted")
    if session_id is None or command is None:
        matches = tenant.select(start=start, end=end, **filters)
        matches.reverse()  # newest first
        # plain-cap: silently fewer rows than -ResultSize asks for, and nothing says so (sim/quirks.py).
        served = min(size, quirks.PLAIN_CAP_ROWS) if tenant.config.has(quirks.PLAIN_CAP) else size
        rows, _ = _with_duplicates(tenant, matches[:served], served, pool=None)
        total = len(matches)
        indexes = list(range(1, len(rows) + 1))
    else:
        key = (start, end, *(tuple(v) if isinstance(v, list) else v for v in filters.values()))
        rows, total, indexes = _page(tenant, session_id, command, key, size, start, end, filters)
    result_count = size if tenant.config.has(quirks.RESULT_COUNT_ECHO) else total
    texts = tenant.store.texts(rows)
    return SimOutput(objects=[
        _event(text, index, result_count, formatted) for index, text in zip(indexes, texts, strict=True)
    ])


def _result_size(p: Params) -> int:
    size = p.integer("ResultSize", DEFAULT_RESULT_SIZE)
    assert size is not None
    if size > MAX_RESULT_SIZE or size < 1:
        relation = "greater than the maximum" if size > MAX_RESULT_SIZE else "less than the minimum"
        bound = MAX_RESULT_SIZE if size > MAX_RESULT_SIZE else 1
        raise SimCmdletError(
            f"Cannot validate argument on parameter 'ResultSize'. The {size} argument is {relation} allowed range of "
            f"{bound}. Supply an argument that is {'less' if size > MAX_RESULT_SIZE else 'greater'} than or equal to "
            f"{bound} and then try the command again.",
            category="InvalidData",
            error_id=f"ParameterArgumentValidationError,{NAME}",
            exception_type="System.Management.Automation.ParameterBindingValidationException",
        )
    return size


def _record_types(p: Params) -> list[int] | None:
    values = p.texts("RecordType")
    if values is None:
        return None
    codes = []
    for value in values:
        code = record_type_code(value)
        if code is None or code not in RECORD_TYPE_NAMES:
            raise binding_error(
                NAME,
                f"Cannot bind parameter 'RecordType'. Cannot convert value \"{value}\" to type "
                '"Microsoft.Exchange.Management.SystemConfigurationTasks.AuditRecordType". Error: "Unable to match '
                "the identifier name to a valid enumerator name. Specify one of the following enumerator names and "
                f'try again: {", ".join(RECORD_TYPES)}"',
                "CannotConvertArgumentNoMessage,RecordType",
            )
        codes.append(code)
    return codes


def _session_command(p: Params) -> str | None:
    value = p.text("SessionCommand")
    if value is None:
        return None
    for known in ("ReturnLargeSet", "ReturnNextPreviewPage"):
        if value.lower() == known.lower():
            return known
    raise binding_error(
        NAME,
        f"Cannot bind parameter 'SessionCommand'. Cannot convert value \"{value}\" to type "
        '"Microsoft.Exchange.Management.SystemConfigurationTasks.UnifiedAuditSessionCommand".',
        "CannotConvertArgumentNoMessage,SessionCommand",
    )


def maybe_fail(tenant: Tenant, cmdlet_name: str = NAME) -> None:
    """Raise a retryable service error for a ``transient_failure_rate`` fraction of search calls."""
    rate = tenant.config.transient_failure_rate
    if rate <= 0:
        return
    with tenant.lock:
        hit = tenant.rng.random() < rate
        message, error_id, category = tenant.rng.choice(_TRANSIENT)
    if hit:
        raise SimCmdletError(
            message, category=category, error_id=f"{error_id},{cmdlet_name}",
            exception_type="Microsoft.Exchange.Management.RestApiClient.RestClientException",
        )


def _with_duplicates(
    tenant: Tenant, rows: list[int], size: int, pool: list[int] | None
) -> tuple[list[int], int]:
    """Add re-served copies of records, as the service does across pages; never beyond ``size`` rows.

    Returns the rows and how many of the given genuine rows (a prefix) they hold. When copies would
    overflow the page, genuine rows from the tail are left out instead, but the page is then full
    (== size), which tells a careful client the window was not exhausted.
    """
    rate = tenant.config.duplicate_rate
    if rate <= 0 or not rows:
        return rows, len(rows)
    with tenant.lock:
        copies = sum(1 for _ in rows if tenant.rng.random() < rate)
        if copies == 0:
            return rows, len(rows)
        if len(rows) + copies > size:
            rows = rows[: max(1, size - copies)]
            copies = size - len(rows)
        source = (pool or []) + rows
        out = list(rows)
        for _ in range(copies):
            out.insert(tenant.rng.randrange(len(out) + 1), tenant.rng.choice(source))
    return out, len(rows)


def _page(
    tenant: Tenant, session_id: str, command: str, key: tuple[Any, ...], size: int, start: datetime, end: datetime,
    filters: dict[str, Any],
) -> tuple[list[int], int, list[int]]:
    """One page of a session: store positions, the number of matches, and each row's ResultIndex."""
    config = tenant.config
    now = time.monotonic()
    with tenant.lock:
        state = tenant.paging.get(session_id)
        if state is not None and config.has(quirks.SESSION_EXPIRY) and state.cursor and (
            now - state.last_used > config.session_idle_s or tenant.rng.random() < config.session_expiry_rate
        ):
            state = None  # forgotten server side: the same SessionId silently starts the search again
        if state is None or state.filter_key != key:
            matches = tenant.select(start=start, end=end, **filters)
            if command == "ReturnLargeSet":
                random.Random(f"{tenant.config.seed}:{session_id}").shuffle(matches)
                cap = LARGE_SET_CAP
            else:
                matches.reverse()
                cap = PREVIEW_CAP
            state = PagingState(filter_key=key, command=command, order=matches, total=len(matches), cap=cap)
            tenant.paging.pop(session_id, None)
            tenant.paging[session_id] = state
            while len(tenant.paging) > MAX_PAGING_SESSIONS:  # a long-running server forgets the oldest
                del tenant.paging[next(iter(tenant.paging))]
        elif state.command != command:
            state.command = command
            state.switched = True
            state.cap = min(state.cap, SWITCHED_CAP)
        state.last_used = now
        room = min(size, state.cap - state.served_rows)
        if room <= 0 or state.cursor >= len(state.order):
            return [], state.total, []
        fresh = state.order[state.cursor : state.cursor + room]
        rows, kept = _with_duplicates(tenant, fresh, room, pool=state.served_positions)
        state.cursor += kept  # only genuine rows actually emitted advance the cursor
        state.served_positions.extend(fresh[:kept])
        first = state.served_rows + 1
        state.served_rows += len(rows)
        indexes = list(range(first, first + len(rows)))
        if config.has(quirks.SESSION_CROSSTALK):
            _crosstalk(tenant, session_id, state, rows, now)
        if config.has(quirks.UNSORTED) and command == "ReturnLargeSet":
            # Rows of a page, ResultIndex with them, in no particular order (Learn: "unsorted data").
            paired = list(zip(rows, indexes, strict=True))
            tenant.rng.shuffle(paired)
            rows, indexes = [r for r, _ in paired], [i for _, i in paired]
        return rows, state.total, indexes


def _crosstalk(tenant: Tenant, session_id: str, state: PagingState, rows: list[int], now: float) -> None:
    """session-crosstalk (sim/quirks.py): while another search is being paged, a page may carry some of
    that search's rows in place of its own. The displaced rows are lost to this session (the cursor has
    moved on) and the intruders keep the displaced rows' ResultIndex, so only their content gives them
    away: outside the window, or not matching the filters."""
    if not rows or tenant.rng.random() >= tenant.config.crosstalk_rate:
        return
    others = [s for sid, s in tenant.paging.items()
              if sid != session_id and s.filter_key != state.filter_key and now - s.last_used <= CROSSTALK_WINDOW_S]
    if not others:
        return
    if state.members is None:
        state.members = frozenset(state.order)
    other = tenant.rng.choice(others)
    foreign = [p for p in other.order[max(0, other.cursor - 100) : other.cursor + 100] if p not in state.members]
    if not foreign:
        return
    for _ in range(tenant.rng.randint(1, max(1, min(len(rows), len(foreign), len(rows) // 50 + 1)))):
        rows[tenant.rng.randrange(len(rows))] = tenant.rng.choice(foreign)


def _event(text: str, index: int, count: int, formatted: bool) -> SimObject:
    record = json.loads(text)
    record_type = record_type_code(record.get("RecordType"))
    created = datetime.fromisoformat(str(record["CreationTime"]).rstrip("Z")).replace(tzinfo=None)
    return SimObject(
        list(TYPE_NAMES),
        {
            "RecordType": RECORD_TYPE_NAMES.get(record_type or -1, str(record.get("RecordType"))),
            "CreationDate": created.replace(tzinfo=UTC),
            "UserIds": record.get("UserId", ""),
            "Operations": record.get("Operation", ""),
            "AuditData": json.dumps(record, indent=2, ensure_ascii=False) if formatted else text,
            "ResultIndex": index,
            "ResultCount": count,
            "Identity": record.get("Id", ""),
            "IsValid": True,
            "ObjectState": "Unchanged",
        },
    )
