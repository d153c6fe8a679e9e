"""The in-process backend: ``ExoBackend`` calling the simulated tenant's handlers directly.

For fast unit tests and as a benchmark comparison point only: no PowerShell protocol, no HTTP, no
serialisation. Tests that prove the product works go through the real pypsrp client and the PSRP
server (``mia_bridge.sim.server``). Terminating handler errors become the same
``mia_bridge.errors`` exceptions the pypsrp backend raises (through ``bridge.errors_map``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mia_bridge.bridge.backend import CmdletCall, CmdletResult, ErrorInfo, ExoBackend, Secret
from mia_bridge.bridge.errors_map import cmdlet_error
from mia_bridge.errors import BridgeTransportError
from mia_bridge.sim import registry
from mia_bridge.sim.tenant import Tenant, TenantSession


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return value  # handlers call .reveal(), as with a decoded SecureString
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class DirectSimBackend:
    """An ExoBackend over a ``Tenant`` in this process; connects with the tenant's app identity."""

    name = "sim-direct"

    def __init__(self, tenant: Tenant, *, connect: bool = True) -> None:
        self.tenant = tenant
        self.connect = connect
        self._session: TenantSession | None = None
        self._lock = threading.Lock()
        self.fail_next_transport = 0  # tests: make the next N invocations fail like a dropped connection

    def clone(self) -> DirectSimBackend:
        """Another connection to the same tenant (one per concurrent worker)."""
        return DirectSimBackend(self.tenant, connect=self.connect)

    def open(self) -> None:
        self._session = self.tenant.open_session()
        if self.connect:
            config = self.tenant.config
            self.invoke(
                CmdletCall(
                    "Connect-ExchangeOnline",
                    {
                        "AppId": config.app_id,
                        "Organization": config.organization,
                        "CertificateThumbprint": config.certificate_thumbprint,
                        "ShowBanner": False,
                    },
                )
            )

    def invoke(self, call: CmdletCall) -> CmdletResult:
        with self._lock:
            if self.fail_next_transport > 0:
                self.fail_next_transport -= 1
                self._session = None
                raise BridgeTransportError("the connection to the simulated tenant was dropped")
        session = self._session
        if session is None:
            raise BridgeTransportError("the backend is not open")
        began = time.monotonic()
        params = {k: _plain(v) for k, v in call.parameters.items()}
        try:
            out = registry.dispatch(session, call.name, params)
        except registry.SimCmdletError as exc:
            raise cmdlet_error(call.name, ErrorInfo(exc.message, exc.category, exc.error_id, exc.target)) from None
        output = [dict(obj.properties) for obj in out.objects]
        if call.select:
            output = [{k: o.get(k) for k in call.select} for o in output]
        return CmdletResult(
            call=call,
            output=output,
            errors=[ErrorInfo(e.message, e.category, e.error_id, e.target) for e in out.errors],
            warnings=list(out.warnings),
            duration_s=time.monotonic() - began,
        )

    def close(self) -> None:
        self._session = None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "organization": self.tenant.config.organization, "transport": "in-process"}

    def __enter__(self) -> ExoBackend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
