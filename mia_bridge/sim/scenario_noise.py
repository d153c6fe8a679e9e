"""Benign background activity at scale: millions of ordinary records in seconds.

Each kind of record is built once by ``RecordFactory`` with placeholders, serialised, and turned into
a ``str.format`` template; generating a record is then one format call (a dict per record plus
``json.dumps`` is 2-4x slower, see BENCHMARKS.md). Times follow a distribution: uniform, bursty
(quiet stretches and one minute holding up to ~20,000 records) or pathological (one second holding
more than 5,000).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from mia_bridge.sim.scenario_records import (
    APP_EXCHANGE,
    APP_NEW_OUTLOOK,
    APP_OFFICE,
    APP_OFFICE_PORTAL,
    APP_TEAMS,
    CLIENT_OUTLOOK,
    CLIENT_OWA,
    CLIENT_REST,
    RecordFactory,
    User,
)
from mia_bridge.sim.tenant_store import AuditStore, epoch_seconds

DISTRIBUTIONS = ("uniform", "bursty", "pathological")
BURST_MAX = 20_000
PATHOLOGICAL_SECOND = 5_200
PATHOLOGICAL_MIN = 5_101  # background records needed to put more than 5,000 in one second
_DAY = 86_400

# kind -> weight (kinds are templates below)
_KINDS: dict[str, float] = {
    "bind_owa": 0.20,
    "bind_rest": 0.08,
    "sync_item": 0.05,
    "sync_folders": 0.04,
    "mailbox_login": 0.15,
    "login_portal": 0.15,
    "login_teams": 0.10,
    "file_accessed": 0.23,
}
_FILES = (
    "Budget 2026.xlsx",
    "Team meeting notes.docx",
    "Roadmap.pptx",
    "Expenses.xlsx",
    "Contract draft.docx",
    "Onboarding.pdf",
    "Travel policy.pdf",
    "Status report.docx",
)


def _tok(name: str, raw: bool = False) -> str:
    return f"@@{'#' if raw else ''}{name}@@"


class _Template:
    """A serialised record with named holes; values must already be JSON-escaped."""

    _HOLE = re.compile(r'"@@(#?)(\w+)@@"')

    def __init__(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        text = text.replace("{", "{{").replace("}", "}}")

        def hole(match: re.Match[str]) -> str:
            return "{" + match.group(2) + "}" if match.group(1) else '"{' + match.group(2) + '}"'

        self.text = self._HOLE.sub(hole, text)

    def for_user(self, values: dict[str, str]) -> str:
        """The template with one user's constant fields filled in (still a format string)."""
        text = self.text
        for key, value in values.items():
            text = text.replace("{" + key + "}", value.replace("{", "{{").replace("}", "}}"))
        return text


def _token_user() -> User:
    return User(
        upn=_tok("upn"),
        display_name="",
        object_id=_tok("oid"),
        mailbox_guid=_tok("mbx"),
        sid=_tok("sid"),
        puid=_tok("puid"),
        home_ip="",
        office_ip="",
    )


def _templates(factory: RecordFactory) -> dict[str, _Template]:
    u = _token_user()
    t, ip, sess = _tok("t"), _tok("ip"), _tok("sess")
    records: dict[str, dict[str, Any]] = {
        "bind_owa": factory.bind(t, u, {}, ip, client_info=CLIENT_OWA, app_id=APP_EXCHANGE, session_id=sess),
        "bind_rest": factory.bind(
            t,
            u,
            {},
            ip,
            client_info=CLIENT_REST,
            app_id=APP_NEW_OUTLOOK,
            client_app_id=APP_NEW_OUTLOOK,
            session_id=sess,
        ),
        "sync_item": factory.sync_item(t, u, "\\Inbox", ip, session_id=sess),
        "sync_folders": factory.sync_folders(t, u, [], ip, session_id=sess),
        "mailbox_login": factory.mailbox_login(
            t, u, ip, client_info=CLIENT_OUTLOOK, app_id=APP_OFFICE, session_id=sess
        ),
        "login_portal": factory.user_logged_in(t, u, ip, app_id=APP_OFFICE_PORTAL),
        "login_teams": factory.user_logged_in(t, u, ip, app_id=APP_TEAMS, request_type="OAuth2:Token"),
        "file_accessed": factory.file_accessed(t, u, ip, file_name="@@fname@@"),
    }
    for kind, record in records.items():
        record["Id"] = _tok("id")
        if kind.startswith("bind") or kind == "sync_folders":
            record["Folders"] = _tok("folders", raw=True)
            record["OperationCount"] = _tok("opcount", raw=True)
        if kind == "sync_item":
            record["Item"] = _tok("item", raw=True)
        if kind.startswith("login"):
            record["InterSystemsId"] = _tok("g2")
            record["IntraSystemId"] = _tok("g3")
        if kind == "file_accessed":
            for key in ("CorrelationId", "ListItemUniqueId"):
                record[key] = _tok("g2" if key == "CorrelationId" else "g3")
            record["ObjectId"] = _tok("objid")
            record["SiteUrl"] = _tok("site")
            record["SourceFileExtension"] = _tok("ext")
            record["ListId"] = _tok("list")
            record["Site"] = _tok("sitegid")
            record["WebId"] = _tok("web")
    return {kind: _Template(record) for kind, record in records.items()}


def _esc(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


@dataclass
class _UserValues:
    """Per-user JSON-escaped values and ready-made Folders fragments."""

    user: User
    base: dict[str, str]
    ips: list[str]
    bind_folders: list[tuple[str, str]]  # (Folders JSON, OperationCount)
    sync_folders: list[tuple[str, str]]
    sync_items: list[str]
    site: str
    ids: dict[str, str]
    sessions: list[str]


def _user_values(factory: RecordFactory, user: User, seed_rng: np.random.Generator) -> _UserValues:
    base = {"upn": _esc(user.upn), "oid": user.object_id, "mbx": user.mailbox_guid, "sid": user.sid, "puid": user.puid}
    paths = list(user.messages)
    bind_folders = []
    for _ in range(24):
        chosen = [
            paths[int(i)]
            for i in seed_rng.choice(len(paths), size=min(len(paths), 1 + int(seed_rng.integers(0, 2))), replace=False)
        ]
        folders = []
        count = 0
        for path in chosen:
            pool = user.messages[path]
            k = 1 + int(seed_rng.integers(0, 4))
            items = [
                {"InternetMessageId": pool[int(j)], "SizeInBytes": factory.size()}
                for j in seed_rng.choice(len(pool), size=min(k, len(pool)), replace=False)
            ]
            count += len(items)
            folders.append({"FolderItems": items, "Id": user.folder_ids[path], "Path": path})
        bind_folders.append((json.dumps(folders, separators=(",", ":"), ensure_ascii=False), str(count)))
    sync_folders = [
        (json.dumps([{"Id": user.folder_ids[p], "Path": p}], separators=(",", ":"), ensure_ascii=False), "1")
        for p in paths
    ]
    sync_items = [
        json.dumps(
            {"Id": user.folder_ids[p], "ParentFolder": {"Id": user.folder_ids[p], "Name": p.lstrip("\\"), "Path": p}},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        for p in paths
    ]
    personal = user.upn.replace("@", "_").replace(".", "_")
    label = factory.organization.split(".")[0]
    site = f"https://{label}-my.sharepoint.com/personal/{personal}/"
    ids = {"list": factory.guid(), "sitegid": factory.guid(), "web": factory.guid()}
    sessions = [factory.guid() for _ in range(64)]
    return _UserValues(user, base, [user.office_ip, user.home_ip], bind_folders, sync_folders, sync_items, site, ids,
                       sessions)


def noise_times(
    n: int, distribution: str, start: datetime, end: datetime, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Sorted epoch seconds for ``n`` records in [start, end)."""
    lo, hi = epoch_seconds(start), epoch_seconds(end)
    span = hi - lo
    if distribution == "uniform":
        times = rng.integers(lo, hi, size=n, dtype=np.int64)
    elif distribution == "bursty":
        burst = min(BURST_MAX, n // 5) if n >= 1000 else 0
        burst_at = lo + (int(span * 0.35) // 60) * 60
        gap_lo = lo + int(span * 0.15)
        gap_len = min(36 * 3600, span // 10)
        rest = n - burst
        # Working-hours weighting: most activity 07-19 UTC, little at night.
        hour_weights = np.array(
            [1, 1, 1, 1, 1, 2, 4, 10, 14, 14, 14, 12, 10, 12, 14, 14, 12, 10, 6, 4, 3, 2, 1, 1], dtype=float
        )
        days = rng.integers(0, max(1, span // _DAY), size=rest, dtype=np.int64)
        hours = rng.choice(24, size=rest, p=hour_weights / hour_weights.sum()).astype(np.int64)
        secs = rng.integers(0, 3600, size=rest, dtype=np.int64)
        times = lo + days * _DAY + hours * 3600 + secs
        times = np.where((times >= gap_lo) & (times < gap_lo + gap_len), times + gap_len, times)  # quiet stretch
        times = np.clip(times, lo, hi - 1)
        times = np.concatenate([times, burst_at + rng.integers(0, 60, size=burst, dtype=np.int64)])
    elif distribution == "pathological":
        if n < PATHOLOGICAL_MIN:
            raise ValueError(f"distribution 'pathological' needs at least {PATHOLOGICAL_MIN} background records")
        crowded = min(PATHOLOGICAL_SECOND, n - 100)  # > 5,000 in one second, the rest spread out
        second = lo + int(span * 0.45)
        times = np.concatenate([
            rng.integers(lo, hi, size=n - crowded, dtype=np.int64),
            np.full(crowded, second, dtype=np.int64),
        ])
    else:
        raise ValueError(f"unknown distribution {distribution!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    times.sort(kind="stable")
    return times


def _guids(rng: np.random.Generator) -> Iterator[str]:
    """Version-4 GUID strings from a seeded generator, made in blocks (never containing "16457")."""
    while True:
        raw = np.frombuffer(rng.bytes(16 * 8192), dtype=np.uint8).reshape(-1, 16).copy()
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.tobytes().hex()
        for i in range(0, len(h), 32):
            text = f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
            yield text if "16457" not in text else text.replace("16457", "16458")


def add_noise(
    store: AuditStore,
    factory: RecordFactory,
    users: list[User],
    n: int,
    distribution: str,
    start: datetime,
    end: datetime,
    seed: int,
    no_binds: list[tuple[str, int, int]] | None = None,
) -> int:
    """Append ``n`` benign records. ``no_binds`` (upn, from, to): throttled windows without binds."""
    if n <= 0:
        return 0
    rng = np.random.default_rng([seed, 7])
    templates = _templates(factory)
    values = [_user_values(factory, u, rng) for u in users]
    times = noise_times(n, distribution, start, end, rng)
    kinds = list(_KINDS)
    weights = np.array([_KINDS[k] for k in kinds])
    kind_idx = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    user_idx = rng.integers(0, len(users), size=n)
    pick = rng.integers(0, 1 << 30, size=n)
    guid = _guids(rng)
    pool = [next(guid) for _ in range(4096)]  # correlation-style ids need not be unique
    # Throttled mailboxes: no binds in their silent window (they become logins instead).
    binds = np.isin(kind_idx, [kinds.index(k) for k in kinds if k.startswith("bind")])
    for upn, a, b in no_binds or []:
        for ui, user in enumerate(users):
            if user.upn.lower() == upn.lower():
                kind_idx[binds & (user_idx == ui) & (times >= a) & (times < b)] = kinds.index("mailbox_login")
    # Filter columns, computed per user / kind once and spread with numpy.
    ip_pick = (pick & 1).astype(np.int64)
    file_pick = pick % len(_FILES)
    op_codes = np.array([store.operation_code(_KIND_META[k][0]) for k in kinds], dtype=np.int64)
    rt_codes = np.array([_KIND_META[k][1] for k in kinds], dtype=np.int64)
    user_codes = np.array([store.user_code(u.upn) for u in users], dtype=np.int64)
    ip_codes = np.array([[store.ip_code(ip) for ip in v.ips] for v in values], dtype=np.int64)
    file_codes = np.array([[store.object_code(f"{v.site}Documents/{f}") for f in _FILES] for v in values],
                          dtype=np.int64)
    kind_objects = np.array([store.object_code(_KIND_META[k][2] if _KIND_META[k][2] != "file" else "")
                             for k in kinds], dtype=np.int64)
    is_file = kind_idx == kinds.index("file_accessed")
    objects = np.where(is_file, file_codes[user_idx, file_pick], kind_objects[kind_idx])
    # Texts: per (user, kind) format strings with the user's constants already in.
    formats = [[templates[k].for_user({**v.base, **v.ids, "site": v.site}).format for k in kinds] for v in values]
    stamps = np.datetime_as_string(times.astype("datetime64[s]"), unit="s").tolist()
    texts: list[str] = []
    append = texts.append
    for when, stamp, k, ui, r in zip(times.tolist(), stamps, kind_idx.tolist(), user_idx.tolist(), pick.tolist(),
                                     strict=True):
        v = values[ui]
        fmt = formats[ui][k]
        kind = kinds[k]
        ip = v.ips[r & 1]
        if kind in ("bind_owa", "bind_rest", "sync_folders"):
            choices = v.bind_folders if kind != "sync_folders" else v.sync_folders
            folders, count = choices[r % len(choices)]
            append(fmt(t=stamp, id=next(guid), ip=ip, sess=v.sessions[(when // 14_400) % 64], folders=folders,
                       opcount=count))
        elif kind == "sync_item":
            append(fmt(t=stamp, id=next(guid), ip=ip, sess=v.sessions[(when // 14_400) % 64],
                       item=v.sync_items[r % len(v.sync_items)]))
        elif kind == "mailbox_login":
            append(fmt(t=stamp, id=next(guid), ip=ip, sess=v.sessions[(when // 14_400) % 64]))
        elif kind == "file_accessed":
            name = _FILES[r % len(_FILES)]
            append(fmt(t=stamp, id=next(guid), ip=ip, g2=pool[r & 4095], g3=pool[(r >> 12) & 4095], fname=name,
                       ext=name.rsplit(".", 1)[-1], objid=f"{v.site}Documents/{name}"))
        else:
            append(fmt(t=stamp, id=next(guid), ip=ip, g2=pool[r & 4095], g3=pool[(r >> 12) & 4095]))
    store.extend_columns(times, op_codes[kind_idx], rt_codes[kind_idx], user_codes[user_idx],
                         ip_codes[user_idx, ip_pick], objects, texts)
    return n


_KIND_META: dict[str, tuple[str, int, str]] = {
    "bind_owa": ("MailItemsAccessed", 50, ""),
    "bind_rest": ("MailItemsAccessed", 50, ""),
    "sync_item": ("MailItemsAccessed", 2, ""),
    "sync_folders": ("MailItemsAccessed", 50, ""),
    "mailbox_login": ("MailboxLogin", 2, ""),
    "login_portal": ("UserLoggedIn", 15, APP_OFFICE_PORTAL),
    "login_teams": ("UserLoggedIn", 15, APP_TEAMS),
    "file_accessed": ("FileAccessed", 6, "file"),
}
