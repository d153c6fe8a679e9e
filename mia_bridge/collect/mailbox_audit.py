"""Search-MailboxAuditLog for MailItemsAccessed, where the cmdlet still exists.

Microsoft announced its retirement (MC713038) and then postponed it; when the endpoint answers
"not recognized", the run says so and goes on with the unified audit log. Rows are written to
``evidence/mailbox_audit.<mailbox>.jsonl`` (the event objects as JSON) and registered in the
manifest. A period that returns ``ResultSize`` rows is split in halves and refetched.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, ExoBackend
from mia_bridge.collect.retry import RetryPolicy, call_with_retry
from mia_bridge.errors import CmdletError, CommandNotFoundError
from mia_bridge.evidence import manifest
from mia_bridge.evidence.store import EVIDENCE_DIR
from mia_bridge.safe_files import open_private

CMDLET = "Search-MailboxAuditLog"
MAX_RESULT_SIZE = 250_000  # the cmdlet's documented upper bound
LOGON_TYPES = ("Owner", "Delegate", "Admin")  # every logon type (Owner needs -ShowDetails, which is sent)


def _safe(identity: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", identity)[:100]


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def collect_mailbox_audit(
    backend: ExoBackend,
    identity: str,
    start: datetime,
    end: datetime,
    case_dir: Path,
    *,
    result_size: int = MAX_RESULT_SIZE,
    retry: RetryPolicy | None = None,
) -> dict[str, Any]:
    """Fetch one mailbox's MailItemsAccessed events; returns a status dict (also in the manifest)."""
    retry = retry or RetryPolicy()
    case_dir = Path(case_dir)
    status: dict[str, Any] = {"identity": identity, "cmdlet": CMDLET, "calls": 0, "gaps": []}
    rows: list[dict[str, Any]] = []
    todo = [(int(start.timestamp()), int(end.timestamp()) + (1 if end.timestamp() % 1 else 0))]
    try:
        while todo:
            a, b = todo.pop()
            call = CmdletCall(
                CMDLET,
                {
                    "Identity": identity,
                    "StartDate": _dt(a),
                    "EndDate": _dt(b),
                    "Operations": ["MailItemsAccessed"],
                    # Without -LogonTypes the cmdlet may leave out the owner's own access (Learn; issue 12).
                    "LogonTypes": list(LOGON_TYPES),
                    "ShowDetails": True,
                    "ResultSize": result_size,
                },
            )
            result = call_with_retry(lambda call=call: backend.invoke(call), retry)  # type: ignore[misc]
            status["calls"] += 1
            if len(result.output) >= result_size:
                if b - a <= 1:
                    status["gaps"].append({"start": _dt(a).isoformat(), "end": _dt(b).isoformat()})
                    rows.extend(result.output)
                    continue
                mid = (a + b) // 2
                todo.extend([(mid, b), (a, mid)])
                continue
            rows.extend(result.output)
    except CommandNotFoundError as exc:
        status.update(status="retired", detail=f"{CMDLET} is not available ({exc.message}); "
                      "MailItemsAccessed comes from the unified audit log only")
        manifest.update_section(case_dir, "mailbox_audit", identity, status)
        return status
    except CmdletError as exc:
        # One mailbox that cannot be searched (unknown, denied) does not undo the rest of the case.
        status.update(status="failed", detail=exc.render().removeprefix("error: "))
        manifest.update_section(case_dir, "mailbox_audit", identity, status)
        return status
    path = case_dir / EVIDENCE_DIR / f"mailbox_audit.{_safe(identity)}.jsonl"
    with open_private(path, "w") as fh:  # never through a link planted in evidence/
        for row in rows:
            fh.write(json.dumps(row, default=_json_default, ensure_ascii=False, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    status.update(status="collected" if not status["gaps"] else "collected with gaps", records=len(rows),
                  file=path.relative_to(case_dir).as_posix())
    manifest.add_files(case_dir, [path], kind="evidence", records={str(path): len(rows)})
    manifest.update_section(case_dir, "mailbox_audit", identity, status)
    return status


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
