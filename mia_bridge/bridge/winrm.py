"""The pypsrp backend: WinRM to a jump host running ExchangeOnlineManagement, one runspace.

    settings = WinRMSettings(server="jump01.corp.example", auth="kerberos", ca_bundle="corp-ca.pem",
                             organization="contoso.onmicrosoft.com", app_id="…", certificate_thumbprint="…")
    with WinRMBackend(settings) as exo:
        result = exo.invoke(CmdletCall("Get-AdminAuditLogConfig"))

Commands go only through ``add_cmdlet``/``add_parameter`` (never script text), DateTimes as typed
UTC ``DT`` elements, secrets as SecureStrings. One pool with ``max_runspaces=1`` keeps the Exchange
connection made once by ``Connect-ExchangeOnline`` (app-only certificate auth) for every call.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, cast

from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.serializer import Serializer, TaggedValue
from pypsrp.wsman import WSMan

from mia_bridge.bridge.backend import CmdletCall, CmdletResult, ErrorInfo, ProgressInfo, Secret
from mia_bridge.bridge.clixml import RawClixml, output_to_record
from mia_bridge.bridge.endpoint import (
    JEA_CONNECT,
    JEA_DISCONNECT,
    JSON_DEPTH,
    NESTED,
    decode_json_output,
    is_connection,
    jea_call,
)
from mia_bridge.bridge.errors_map import cmdlet_error, error_info, map_transport_error, scrub
from mia_bridge.bridge.winrm_settings import WinRMSettings
from mia_bridge.errors import BridgeAuthError, BridgeError, BridgeTransportError, CmdletError, UsageError

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
GRAPH_PREFIX = "get-mg"
# -ExchangeEnvironmentName → Connect-MgGraph -Environment.
GRAPH_ENVIRONMENTS = {"O365USGovGCCHigh": "USGov", "O365USGovDoD": "USGovDoD", "O365China": "China"}
# Observers of every pipeline sent (endpoint kind, [(command, parameters), …]): the contract test's
# collector (tests/conftest.py) checks them against the shipped role capability.
SENT_OBSERVERS: list[Callable[[str, list[tuple[str, dict[str, Any]]]], None]] = []


class _RawOutputSerializer(Serializer):
    """pypsrp's serializer, except that pipeline output stays CLIXML text.

    pypsrp would build objects we cannot use (dates as strings, multi-valued properties as raw XML)
    and we would parse the XML again; ``clixml.output_to_record`` reads the text once instead.
    Pipeline output is the only message pypsrp deserializes from a string without metadata.
    """

    def deserialize(self, element: Any, metadata: Any = None, clear: bool = True) -> Any:
        if metadata is None and clear and isinstance(element, str):
            return RawClixml(element)
        return super().deserialize(element, metadata, clear)


class WinRMBackend:
    """``ExoBackend`` over pypsrp 0.9 (WSMan/WinRM)."""

    name = "psrp"

    def __init__(self, settings: WinRMSettings) -> None:
        settings.validate()
        self.settings = settings
        self._wsman: WSMan | None = None
        self._pool: RunspacePool | None = None
        self._keys_exchanged = False
        self.connected_exchange = False
        self.connected_graph = False
        self._broken = False  # a transport error happened: close() then skips remote calls
        self.logon: str | None = None  # what the logon used: kerberos, ntlm, basic, certificate

    # --- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        if self._pool is not None:
            return
        s = self.settings
        if s.auth == "kerberos" and not _kerberos_available():
            raise UsageError(
                "Kerberos authentication needs the gssapi package and a Kerberos ticket",
                hint="pip install 'mia-bridge[kerberos]' (apt-get install libkrb5-dev first), then kinit; "
                "or use --auth negotiate",
            )
        if s.auth == "basic":
            if s.ssl:
                warnings.warn(
                    "Basic authentication sends the password to the jump host on every request; prefer "
                    "kerberos or negotiate",
                    stacklevel=2,
                )
            else:
                log.info("Basic authentication over HTTP: allowed only because %s is loopback", s.server)
        try:
            self._wsman = WSMan(
                s.server,
                port=s.effective_port,
                ssl=s.ssl,
                path=s.path,
                auth=s.auth,
                username=s.username,
                password=s.password.reveal() if s.password else None,
                # pypsrp takes a CA bundle path here too (its annotation says bool).
                cert_validation=cast(Any, (s.ca_bundle or True) if s.cert_validation else False),
                encryption="never" if (s.auth == "basic" and not s.ssl) else "auto",
                max_envelope_size=s.max_envelope_size,
                operation_timeout=s.operation_timeout,
                read_timeout=s.read_timeout,
                connection_timeout=s.connection_timeout,
                reconnection_retries=s.reconnection_retries,
                reconnection_backoff=s.reconnection_backoff,
                certificate_pem=s.client_cert_pem,
                certificate_key_pem=s.client_key_pem,
                negotiate_hostname_override=s.spn_host,
            )
            # The pool sizes its fragmenter from this in __init__: raise it first.
            self._wsman.update_max_payload_size(s.max_envelope_size)
            pool = RunspacePool(
                self._wsman,
                configuration_name=s.configuration_name,
                min_runspaces=1,
                max_runspaces=1,
                idle_timeout=s.idle_timeout,
            )
            raw = _RawOutputSerializer()
            pool._serializer = raw
            pool._fragmenter.serializer = raw
            pool.open()
            self._pool = pool
            self.logon = _logon_protocol(self._wsman, s)
        except Exception as exc:
            self._teardown()
            raise self._map(exc) from None
        if s.organization:
            try:
                self._connect_exchange()
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and not self._broken:
            if self.connected_exchange:
                try:
                    if self.settings.kind == "jea":
                        self._run(CmdletCall(JEA_DISCONNECT))
                    else:
                        self._run(CmdletCall("Disconnect-ExchangeOnline", {"Confirm": False}))
                except Exception:  # best effort: the session is going away anyway
                    log.debug("Disconnect-ExchangeOnline failed", exc_info=False)
                self.connected_exchange = False
            self.connected_graph = False
            try:
                pool.close()
            except Exception:
                log.debug("closing the runspace pool failed", exc_info=False)
        self._teardown()

    def reconnect(self) -> None:
        """Throw the session away and open a new one (Connect-ExchangeOnline again)."""
        self.close()
        self.open()

    def is_alive(self) -> bool:
        return self._pool is not None and bool(self._pool.is_alive(timeout=self.settings.operation_timeout))

    def _teardown(self) -> None:
        self._keys_exchanged = False
        self._broken = False
        self.connected_exchange = self.connected_graph = False
        if self._wsman is not None:
            try:
                self._wsman.close()
            finally:
                self._wsman = None

    def __enter__(self) -> WinRMBackend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": self.name,
            "endpoint": s.endpoint,
            "server": s.server,
            "transport": s.transport,
            "auth": s.auth,
            "logon": self.logon,
            "username": s.username,
            "configuration_name": s.configuration_name,
            "endpoint_kind": s.kind,
            "cert_validation": bool(s.cert_validation),
            "ca_bundle": s.ca_bundle,
            "spn_host": s.spn_host,
            "organization": s.organization,
            "app_id": s.app_id,
            "certificate_thumbprint": s.certificate_thumbprint,
            "certificate_path": s.certificate_path,
            "exchange_environment": s.exchange_environment,
        }

    # --- calls ----------------------------------------------------------------------------------

    def invoke(self, call: CmdletCall) -> CmdletResult:
        if self._pool is None:
            raise BridgeError("the connection is not open", hint="call open() or use the backend as a context manager")
        kind = self.settings.kind
        nested = call.name.lower() in NESTED
        if kind == "jea":
            if is_connection(call.name):
                raise UsageError(f"{call.name} is not sent to a JEA endpoint: its functions connect themselves")
            # The role capability's function: it connects on first use and emits flat objects, the Graph
            # ones one JSON string per item.
            result = self._run(jea_call(call))
        else:
            if call.name.lower().startswith(GRAPH_PREFIX) and not self.connected_graph and self.settings.organization:
                self._connect_graph()
            stages = [("ConvertTo-Json", {"Depth": JSON_DEPTH, "Compress": True})] if nested else []
            result = self._run(call, stages=stages)
        if nested:
            result.output = decode_json_output(result.output, what=call.name)
        result.call = call
        return result

    def _connect_graph(self) -> None:
        """Connect-MgGraph once, app-only with the same app and certificate (Get-Mg* cmdlets)."""
        s = self.settings
        if not s.certificate_thumbprint:
            raise BridgeAuthError(
                "Microsoft Graph PowerShell needs the app certificate by thumbprint",
                hint="pass --certificate-thumbprint (Connect-MgGraph cannot take a certificate file path)",
            )
        params: dict[str, Any] = {
            "ClientId": s.app_id,
            "TenantId": s.organization,
            "CertificateThumbprint": s.certificate_thumbprint,
            "NoWelcome": True,
        }
        if s.exchange_environment and s.exchange_environment in GRAPH_ENVIRONMENTS:
            params["Environment"] = GRAPH_ENVIRONMENTS[s.exchange_environment]
        try:
            self._run(CmdletCall("Connect-MgGraph", params))
        except CmdletError as exc:
            raise BridgeAuthError(f"Connect-MgGraph failed for {s.organization}: {exc.message}",
                                  cmdlet="Connect-MgGraph") from None
        self.connected_graph = True

    def _connect_exchange(self) -> None:
        s = self.settings
        jea = s.kind == "jea"
        params: dict[str, Any] = {"AppId": s.app_id, "Organization": s.organization}
        if not jea:
            params["ShowBanner"] = False
        if s.certificate_thumbprint:
            params["CertificateThumbprint"] = s.certificate_thumbprint
        else:
            params["CertificateFilePath"] = s.certificate_path
            if s.certificate_password is not None:
                params["CertificatePassword"] = s.certificate_password
        if s.exchange_environment:
            params["ExchangeEnvironmentName"] = s.exchange_environment
        name = JEA_CONNECT if jea else "Connect-ExchangeOnline"
        try:
            self._run(CmdletCall(name, params))
        except CmdletError as exc:
            raise BridgeAuthError(
                f"{name} failed for {s.organization}: {exc.message}",
                hint="check --organization, --app-id and the certificate on the jump host (thumbprint in "
                "Cert:\\LocalMachine\\My or the file and its password); the app needs Exchange.ManageAsApp",
                cmdlet=name,
            ) from None
        self.connected_exchange = True

    def _run(self, call: CmdletCall, *, stages: list[tuple[str, dict[str, Any]]] | None = None) -> CmdletResult:
        """One pipeline: the command, Select-Object when the call selects, then ``stages`` (ConvertTo-Json)."""
        assert self._pool is not None
        started = time.monotonic()
        log.debug("invoke %s", call.describe())  # secrets masked by describe()
        pipeline: list[tuple[str, dict[str, Any]]] = [(call.name, dict(call.parameters))]
        if call.select:
            pipeline.append(("Select-Object", {"Property": list(call.select)}))
        pipeline.extend(stages or [])
        for observer in SENT_OBSERVERS:
            observer(self.settings.kind, pipeline)
        ps = PowerShell(self._pool)
        try:
            for name, parameters in pipeline:
                ps.add_cmdlet(name)
                for key, value in parameters.items():
                    ps.add_parameter(key, self._encode(value))
            ps.invoke()
            output = [output_to_record(o) for o in ps.output]
        except Exception as exc:
            raise self._map(exc) from None
        finally:
            self._close_pipeline(ps)
        secrets = self._secrets(call.parameters)
        errors = [error_info(e, secrets) for e in ps.streams.error]
        result = CmdletResult(
            call=call,
            output=output,
            errors=errors,
            warnings=[scrub(str(getattr(w, "message", "") or ""), secrets) for w in ps.streams.warning],
            progress=[
                ProgressInfo(
                    activity=str(getattr(p, "activity", "") or ""),
                    status=str(getattr(p, "description", "") or ""),
                    percent=_int(getattr(p, "percent_complete", -1)),
                )
                for p in ps.streams.progress
            ],
            duration_s=time.monotonic() - started,
        )
        log.debug("%s: %d objects, %d errors, %d warnings in %.2f s", call.name, len(output), len(errors),
                  len(result.warnings), result.duration_s)
        if ps.state == PSInvocationState.FAILED:
            # The terminating ErrorRecord comes last (from the pipeline state message).
            info = errors.pop() if errors else ErrorInfo(message="the pipeline failed without an error record")
            raise cmdlet_error(call.name, info)
        return result

    def _close_pipeline(self, ps: PowerShell) -> None:
        if self._pool is None or ps.state == PSInvocationState.RUNNING:
            return
        try:
            ps.close()
        except Exception:  # the pipeline is already gone on the server; nothing to free
            log.debug("closing the pipeline failed", exc_info=False)

    def _encode(self, value: Any) -> Any:
        """A CmdletCall value → what pypsrp serializes to the right PowerShell type."""
        if isinstance(value, Secret):
            if not self._keys_exchanged:
                assert self._pool is not None
                self._pool.exchange_keys()
                self._keys_exchanged = True
            return TaggedValue("SS", value.reveal())
        if isinstance(value, bool):
            return value
        if isinstance(value, dt.datetime):
            return ps_datetime(value)
        if isinstance(value, int):
            return value if -INT32_MAX - 1 <= value <= INT32_MAX else TaggedValue("I64", value)
        if isinstance(value, float):
            return TaggedValue("Db", value)
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple):
            return [self._encode(v) for v in value]
        raise UsageError(f"cannot send a {type(value).__name__} as a cmdlet parameter")

    def _secrets(self, parameters: Mapping[str, Any] | None = None) -> list[Secret | str | None]:
        s = self.settings
        found: list[Secret | str | None] = [s.password, s.certificate_password]
        for value in (parameters or {}).values():
            if isinstance(value, Secret):
                found.append(value)
        return found

    def _map(self, exc: BaseException) -> BaseException:
        if isinstance(exc, UsageError | BridgeError):
            return exc
        mapped = map_transport_error(
            exc, endpoint=self.settings.endpoint, username=self.settings.username, secrets=self._secrets()
        )
        if isinstance(mapped, BridgeTransportError | BridgeAuthError):
            self._broken = True
        return mapped


def _logon_protocol(wsman: WSMan, s: WinRMSettings) -> str | None:
    """Which protocol the logon used; for Negotiate that is Kerberos, or NTLM as the fallback."""
    if s.auth in ("basic", "certificate"):
        return s.auth
    auth = getattr(getattr(wsman.transport, "session", None), "auth", None)
    contexts = getattr(auth, "contexts", None) or {}
    context = contexts.get(s.server) or next(iter(contexts.values()), None)
    protocol = getattr(context, "negotiated_protocol", None)
    return str(protocol) if protocol else None


def _kerberos_available() -> bool:
    """pyspnego does Kerberos on Linux through python-gssapi (the pypsrp[kerberos] extra)."""
    return importlib.util.find_spec("gssapi") is not None


def ps_datetime(value: dt.datetime) -> ET.Element:
    """A typed UTC DateTime element (pypsrp cannot serialize datetime itself)."""
    if value.tzinfo is None:
        raise UsageError("refusing to send a datetime without a time zone", hint="use timezone-aware UTC datetimes")
    element = ET.Element("DT")
    element.text = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return element


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
