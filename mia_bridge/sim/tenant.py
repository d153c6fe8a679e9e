"""The simulated Exchange Online tenant: configuration, directory, audit records and sessions.

Transports (PSRP server, REST) open one ``TenantSession`` per runspace pool or client and hand it to
``registry.dispatch``; handlers reach the tenant through ``session.tenant``.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mia_bridge.sim import quirks as quirk_names
from mia_bridge.sim.registry import SimCmdletError, canonical_name, command_not_found
from mia_bridge.sim.tenant_store import AuditStore, epoch_seconds, record_type_code

if TYPE_CHECKING:
    from mia_bridge.sim.truth import ScenarioTruth

DEFAULT_ORGANIZATION = "contoso.onmicrosoft.com"
DEFAULT_APP_ID = "5e8c6f1a-2b3d-4c5e-9f70-81a2b3c4d5e6"
DEFAULT_THUMBPRINT = "3F2A9C4B8D1E7F60A5B4C3D2E1F0A9B8C7D6E5F4"
EXO_MODULE_VERSION = "3.10.1"
GRAPH_AUTH_MODULE_VERSION = "2.32.0"

# Cmdlets that exist before any Connect-*: the modules' own commands.
MODULE_CMDLETS = frozenset(
    name.lower()
    for name in (
        "Connect-ExchangeOnline", "Disconnect-ExchangeOnline", "Get-ConnectionInformation", "Get-Module",
        "Connect-MgGraph", "Disconnect-MgGraph", "Get-MgContext", "Get-Command",
    )
)
# Exchange cmdlets are proxied by the module only after Connect-ExchangeOnline (REST module V3).
GRAPH_PREFIX = "get-mg"


@dataclass
class TenantConfig:
    """What the simulated tenant accepts and how realistic (slow, flaky) it is."""

    organization: str = DEFAULT_ORGANIZATION
    app_id: str = DEFAULT_APP_ID
    certificate_thumbprint: str = DEFAULT_THUMBPRINT
    certificate_path: str = "C:\\certs\\mia.pfx"  # accepted with -CertificateFilePath + SecureString password
    certificate_password: str = "sim-cert-password"
    premium: bool = True  # Audit Premium SKU (M365_ADVANCED_AUDITING) present
    ingestion_enabled: bool = True
    mailbox_audit_retired: bool = False  # Search-MailboxAuditLog -> CommandNotFoundException
    latency_s: float = 0.0  # per-call latency (sleep) for benchmarks
    transient_failure_rate: float = 0.0  # fraction of search calls failing "server busy" (retryable)
    duplicate_rate: float = 0.0  # fraction of returned records duplicated across pages/calls
    result_count_equals_result_size: bool = False  # adds the result-count-echo quirk (kept for old callers)
    seed: int = 0
    # Collection quirks (sim/quirks.py); None = the defaults: every reported misbehaviour of the service.
    quirks: frozenset[str] | None = None
    crosstalk_rate: float = 0.02  # session-crosstalk: chance a page, served while another search runs, is mixed
    session_idle_s: float = 120.0  # session-expiry: a session unused this long is forgotten (real value unknown)
    session_expiry_rate: float = 0.0  # session-expiry: chance a session is lost before any page (tests raise it)
    settings_delay_s: float = 0.5  # Set-AdminAuditLogConfig is read back changed only after this (minutes in reality)

    def __post_init__(self) -> None:
        chosen = set(self.quirks) if self.quirks is not None else set(
            quirk_names.default_for(ingestion_enabled=self.ingestion_enabled))
        unknown = chosen - set(quirk_names.ALL)
        if unknown:
            raise ValueError(f"TenantConfig.quirks: unknown {sorted(unknown)}; known: {', '.join(quirk_names.ALL)}")
        if self.result_count_equals_result_size:
            chosen.add(quirk_names.RESULT_COUNT_ECHO)
        self.quirks = frozenset(chosen)
        for name in ("transient_failure_rate", "duplicate_rate", "crosstalk_rate", "session_expiry_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TenantConfig.{name} must be between 0 and 1, not {value}")
        for name in ("latency_s", "session_idle_s", "settings_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"TenantConfig.{name} must not be negative")

    def has(self, quirk: str) -> bool:
        """Whether the tenant shows ``quirk`` (a name from sim/quirks.py)."""
        return quirk in (self.quirks or ())

    def __repr__(self) -> str:  # the certificate password stays out of logs
        fields = {k: v for k, v in self.__dict__.items() if k != "certificate_password"}
        return f"TenantConfig({', '.join(f'{k}={v!r}' for k, v in fields.items())}, certificate_password='***')"


@dataclass
class Directory:
    """Directory objects the non-audit cmdlets list, as PowerShell property bags."""

    mailboxes: list[dict[str, Any]] = field(default_factory=list)
    domains: list[dict[str, Any]] = field(default_factory=list)
    # Get-MgDomainFederationConfiguration per domain Id (lower case); managed domains have none
    federation: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    service_principals: list[dict[str, Any]] = field(default_factory=list)
    app_role_assignments: list[dict[str, Any]] = field(default_factory=list)  # each has ServicePrincipalId
    role_assignments: list[dict[str, Any]] = field(default_factory=list)
    # Search-MailboxAuditLog rows per mailbox UPN (lower case), built by the scenario.
    mailbox_audit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class PagingState:
    """Server-side state of one Search-UnifiedAuditLog -SessionId."""

    filter_key: tuple[Any, ...]
    command: str
    order: list[int]  # store positions in the order this session serves them
    total: int  # matching records (ResultCount)
    cursor: int = 0
    served_rows: int = 0
    cap: int = 50_000
    switched: bool = False
    served_positions: list[int] = field(default_factory=list)
    last_used: float = 0.0  # time.monotonic() of the last page (session-expiry, session-crosstalk)
    members: frozenset[int] | None = None  # the positions matching this search (built when first needed)


class Tenant:
    """One simulated tenant: configuration, directory, audit records and ground truth."""

    def __init__(self, config: TenantConfig | None = None) -> None:
        self.config = config or TenantConfig()
        self.tenant_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, self.config.organization.lower()))
        self.ingestion_enabled = self.config.ingestion_enabled
        self.store = AuditStore()
        self.directory = Directory()
        self.call_counts: collections.Counter[str] = collections.Counter()
        self.truth: ScenarioTruth | None = None
        self.lock = threading.RLock()
        self.rng = random.Random(self.config.seed)
        self.paging: dict[str, PagingState] = {}
        self._session_counter = 0
        self.dehydrated = self.config.has(quirk_names.DEHYDRATED)
        # (value, monotonic time it becomes visible): Set-AdminAuditLogConfig is read back late.
        self.pending_ingestion: tuple[bool, float] | None = None

    # --- sessions -------------------------------------------------------------------------------

    def open_session(self) -> TenantSession:
        with self.lock:
            self._session_counter += 1
            return TenantSession(self, self._session_counter)

    # --- audit records --------------------------------------------------------------------------

    def add_audit_records(self, records: Iterable[dict[str, Any]]) -> None:
        """Add AuditData dicts (each needs Id, CreationTime, Operation, RecordType)."""
        for record in records:
            self.store.add_record(record)

    def records_period(self) -> tuple[datetime, datetime] | None:
        """Whole UTC days covering the audit records (None when there are none)."""
        if not len(self.store):
            return None
        first = datetime.fromtimestamp(self.store.time_at(0), tz=UTC)  # the store is sorted by time
        last = datetime.fromtimestamp(self.store.time_at(len(self.store) - 1), tz=UTC)
        first_day = datetime(first.year, first.month, first.day, tzinfo=UTC)
        last_day = datetime(last.year, last.month, last.day, tzinfo=UTC)
        return first_day, last_day + timedelta(days=1)

    def now(self) -> datetime:
        """The tenant's present: midnight (UTC) after its last audit record. A scenario's records sit in a fixed
        month whatever the date of the run, so what counts back from the present (message trace's 90-day reach,
        the audit retention, doctor's probes) must count from this, or the same tenant would look different
        every day, and its older mail would fall out of reach weeks after the scenario was written. The real
        clock when the tenant holds no records."""
        period = self.records_period()
        return period[1] if period is not None else datetime.now(tz=UTC)

    def audit_records(self) -> Iterator[dict[str, Any]]:
        """Every record held (ground truth), parsed, in CreationTime order."""
        for text in self.store.snapshot():
            yield json.loads(text)

    def __len__(self) -> int:
        return len(self.store)

    def query_truth(
        self,
        *,
        start: datetime,
        end: datetime,
        operations: Iterable[str] | None = None,
        record_types: Iterable[str | int] | None = None,
        user_ids: Iterable[str] | None = None,
        free_text: str | None = None,
        ip_addresses: Iterable[str] | None = None,
        object_ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every record Search-UnifiedAuditLog's filters would match, with no cap, oldest first."""
        positions = self.select(
            start=start, end=end, operations=operations, record_types=record_types, user_ids=user_ids,
            free_text=free_text, ip_addresses=ip_addresses, object_ids=object_ids,
        )
        return [json.loads(t) for t in self.store.texts(positions)]

    def select(
        self,
        *,
        start: datetime,
        end: datetime,
        operations: Iterable[str] | None = None,
        record_types: Iterable[str | int] | None = None,
        user_ids: Iterable[str] | None = None,
        free_text: str | None = None,
        ip_addresses: Iterable[str] | None = None,
        object_ids: Iterable[str] | None = None,
    ) -> list[int]:
        """Store positions matching the cmdlet's filter semantics (see ``tenant_store``)."""
        codes: list[int] | None = None
        if record_types is not None:
            codes = [c for c in (record_type_code(r) for r in record_types) if c is not None]
        found = self.store.select(
            epoch_seconds(start),
            epoch_seconds(end),
            operations=list(operations) if operations is not None else None,
            record_types=codes,
            user_ids=list(user_ids) if user_ids is not None else None,
            ip_addresses=list(ip_addresses) if ip_addresses is not None else None,
            object_ids=list(object_ids) if object_ids is not None else None,
            free_text=free_text,
        )
        return [int(p) for p in found.tolist()]

    def dump_truth(self, path: str | Path) -> int:
        """Write every record as AuditData JSON lines; returns the count."""
        count = 0
        with Path(path).open("w", encoding="utf-8", newline="\n") as out:
            for text in self.store.snapshot():
                out.write(text)
                out.write("\n")
                count += 1
        return count


class TenantSession:
    """Connection state of one client (runspace pool / REST client). Implements ``registry.TenantLike``."""

    def __init__(self, tenant: Tenant, number: int) -> None:
        self.tenant = tenant
        self.number = number
        self.connected_exchange = False
        self.connected_graph = False
        self.connection_id = str(uuid.UUID(int=random.Random(f"{tenant.config.seed}:{number}").getrandbits(128),
                                            version=4))
        self.connected_at: datetime | None = None
        self.connection_uri = ""
        # A JEA endpoint with RunAsVirtualAccount: the identity's user certificate store is empty (sim/jea.py).
        self.virtual_account = False

    def before_call(self, cmdlet: str, params: Mapping[str, Any]) -> None:
        """Count, delay, and refuse cmdlets the session cannot run yet (like PowerShell would)."""
        config = self.tenant.config
        key = cmdlet.lower()
        with self.tenant.lock:
            self.tenant.call_counts[canonical_name(cmdlet)] += 1
        if config.latency_s > 0:
            time.sleep(config.latency_s)
        if key in MODULE_CMDLETS:
            return
        if key.startswith(GRAPH_PREFIX):
            if not self.connected_graph:
                raise SimCmdletError(
                    "Authentication needed. Please call Connect-MgGraph.",
                    category="AuthenticationError",
                    error_id=f"Microsoft.Graph.PowerShell.Authentication.AuthenticationException,{canonical_name(cmdlet)}",
                    exception_type="System.Security.Authentication.AuthenticationException",
                )
            return
        if not self.connected_exchange:
            raise command_not_found(cmdlet)
        if key == "search-mailboxauditlog" and config.mailbox_audit_retired:
            raise command_not_found(cmdlet)


def make_guid(rng: random.Random) -> str:
    """A version-4 GUID drawn from a seeded generator (scenarios are deterministic). Never spells
    "16457", Sparrow's SAML free-text search term."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).replace("16457", "16458")
