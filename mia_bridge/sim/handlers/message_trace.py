"""Get-MessageTraceV2 and the older Get-MessageTrace over the tenant's mail flow (``sim/mailflow.py``).

Limits as documented (issue 7): V2 reaches 90 days back, at most 10 days per query, ``-ResultSize`` up
to 5,000 (default 1,000), rows newest first, and when more rows match a warning gives the next query
(``-EndDate`` = the last row's Received, ``-StartingRecipientAddress`` = its recipient); about 100
queries per 5 minutes, beyond which the service throttles. The older cmdlet reaches 10 days back and
pages with ``-Page``/``-PageSize`` (5,000). One row per recipient. ``MailFlow.v2_available = False``
makes V2 an unknown command (tenants where only the old one exists).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.mailflow import LEGACY_TRACE_REACH, TRACE_REACH, MailFlow, MailMessage, mailflow_of, normalise_id
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, cmdlet, command_not_found
from mia_bridge.sim.tenant import TenantSession

V2 = "Get-MessageTraceV2"
LEGACY = "Get-MessageTrace"
MAX_RESULT_SIZE = 5000
DEFAULT_RESULT_SIZE = 1000
MAX_WINDOW = timedelta(days=10)
MORE_RESULTS = "There are more results, use the following command to get more results:"
_FILTERS = ("MessageId", "SenderAddress", "RecipientAddress", "StartDate", "EndDate", "Status", "MessageTraceId",
            "FromIP", "ToIP")


def _invalid(message: str, cmdlet_name: str, error_id: str = "InvalidArgument") -> SimCmdletError:
    return SimCmdletError(message, category="InvalidArgument", error_id=f"{error_id},{cmdlet_name}",
                          exception_type="System.ArgumentException")


def _throttled(cmdlet_name: str, flow: MailFlow) -> SimCmdletError:
    return SimCmdletError(
        f"Request was throttled: more than {flow.rate_limit} message trace queries in "
        f"{int(flow.rate_window_s)} seconds. Please retry after some time.",
        category="LimitsExceeded", error_id=f"ThrottlingException,{cmdlet_name}",
        exception_type="Microsoft.Exchange.Management.RestApiClient.RestClientException",
    )


def _check_role(flow: MailFlow, cmdlet_name: str) -> None:
    if flow.trace_denied:
        raise SimCmdletError(
            f"The user or app does not have the role required to run {cmdlet_name} (Message Tracking / "
            "View-Only Recipients).", category="PermissionDenied", error_id=f"AccessDenied,{cmdlet_name}",
            exception_type="System.UnauthorizedAccessException",
        )


def _rows(
    flow: MailFlow, p: Params, start: datetime, end: datetime, include_end: bool
) -> list[tuple[MailMessage, str]]:
    ids = {normalise_id(m) for m in p.texts("MessageId") or []}
    senders = {s.lower() for s in p.texts("SenderAddress") or []}
    recipients = {r.lower() for r in p.texts("RecipientAddress") or []}
    statuses = {s.lower() for s in p.texts("Status") or []}
    trace_ids = {t.lower() for t in p.texts("MessageTraceId") or []}
    rows = []
    for message in flow.messages.values():
        if not message.transported or not start <= message.received <= end:
            continue
        if message.received == end and not include_end:
            continue
        if ids and message.key not in ids:
            continue
        if senders and message.sender not in senders:
            continue
        if statuses and message.status.lower() not in statuses:
            continue
        if trace_ids and message.message_trace_id not in trace_ids:
            continue
        for recipient in message.recipients:
            if recipients and recipient not in recipients:
                continue
            rows.append((message, recipient))
    rows.sort(key=lambda r: (-r[0].received.timestamp(), r[1]))
    return rows


def _dates(flow: MailFlow, p: Params, reach: timedelta) -> tuple[datetime, datetime]:
    start, end = p.date("StartDate"), p.date("EndDate")
    if start is None and end is None:
        end = flow.now
        start = end - timedelta(hours=48)
    if start is None or end is None:
        raise _invalid("Both StartDate and EndDate must be specified.", p.cmdlet)
    if end <= start:
        raise _invalid("The EndDate must be later than the StartDate.", p.cmdlet)
    if start < flow.now - reach:
        raise _invalid(f"Invalid StartDate value. The StartDate can't be older than {reach.days} days from today.",
                       p.cmdlet, "InvalidStartDate")
    return start, end


def _object(message: MailMessage, recipient: str, organization: str, start: datetime, end: datetime,
            index: int, v2: bool) -> SimObject:
    props: dict[str, Any] = {
        "Organization": organization,
        "MessageId": message.internet_message_id,
        "Received": message.received,
        "SenderAddress": message.sender,
        "RecipientAddress": recipient,
        "Subject": message.subject,
        "Status": message.status,
        "ToIP": None if message.direction != "Outbound" else "198.18.0.25",
        "FromIP": "198.18.0.10" if message.direction == "Inbound" else None,
        "Size": message.size,
        "MessageTraceId": message.message_trace_id,
        "StartDate": start,
        "EndDate": end,
        "Index": index,
    }
    name = "MessageTraceV2" if v2 else "MessageTrace"
    return SimObject([f"Microsoft.Exchange.Management.FfoReporting.{name}", "System.Object"], props)


@cmdlet(V2)
def get_message_trace_v2(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    tenant = session.tenant
    flow = mailflow_of(tenant)
    if not flow.v2_available:
        raise command_not_found(V2)
    _check_role(flow, V2)
    p = Params(V2, params, (*_FILTERS, "ResultSize", "StartingRecipientAddress", "Subject", "SubjectFilterType"))
    start, end = _dates(flow, p, TRACE_REACH)
    # Received has sub-second precision but how -EndDate is compared is undocumented [U]: the harsher side
    # is to compare it to the second, so a client that pages at a row's exact Received loses the rest of
    # that second's rows (exchange-platform-facts, "Message trace").
    end = end.replace(microsecond=0)
    if end - start > MAX_WINDOW:
        raise _invalid("The time range between StartDate and EndDate can't be more than 10 days.", V2,
                       "InvalidDateRange")
    size = p.integer("ResultSize", DEFAULT_RESULT_SIZE) or 0
    if not 1 <= size <= MAX_RESULT_SIZE:
        raise _invalid(f"Cannot validate argument on parameter 'ResultSize'. The {size} argument is outside the "
                       f"allowed range of 1 to {MAX_RESULT_SIZE}.", V2, "ParameterArgumentValidationError")
    starting = (p.text("StartingRecipientAddress") or "").lower() or None
    if starting is not None and p.date("EndDate") is None:
        raise _invalid("StartingRecipientAddress requires EndDate.", V2)
    if not flow.admit_query():
        raise _throttled(V2, flow)
    rows = _rows(flow, p, start, end, include_end=starting is not None)
    if starting is not None:  # continue after (EndDate, StartingRecipientAddress): rows at EndDate sort by recipient
        rows = [r for r in rows if r[0].received < end or r[1] > starting]
    page, rest = rows[:size], rows[size:]
    org = tenant.config.organization
    out = SimOutput(objects=[_object(m, r, org, start, end, i, True) for i, (m, r) in enumerate(page)])
    if rest:
        last_message, last_recipient = page[-1]
        out.warnings.append(
            f'{MORE_RESULTS} Get-MessageTraceV2 -StartDate "{start:%m/%d/%Y %H:%M:%S}" -EndDate '
            f'"{last_message.received:%m/%d/%Y %H:%M:%S}" -StartingRecipientAddress "{last_recipient}" '
            f"-ResultSize {size}"
        )
    return out


@cmdlet(LEGACY)
def get_message_trace(session: TenantSession, params: dict[str, Any]) -> SimOutput:
    tenant = session.tenant
    flow = mailflow_of(tenant)
    _check_role(flow, LEGACY)
    p = Params(LEGACY, params, (*_FILTERS, "Page", "PageSize", "ProbeTag"))
    start, end = _dates(flow, p, LEGACY_TRACE_REACH)
    page_size = p.integer("PageSize", DEFAULT_RESULT_SIZE) or 0
    page_no = p.integer("Page", 1) or 0
    if not 1 <= page_size <= MAX_RESULT_SIZE or not 1 <= page_no <= 1000:
        raise _invalid("Page must be 1 to 1000 and PageSize 1 to 5000.", LEGACY, "ParameterArgumentValidationError")
    if not flow.admit_query():
        raise _throttled(LEGACY, flow)
    rows = _rows(flow, p, start, end, include_end=False)
    chunk = rows[(page_no - 1) * page_size: page_no * page_size]
    org = tenant.config.organization
    return SimOutput(objects=[_object(m, r, org, start, end, i, False) for i, (m, r) in enumerate(chunk)])
