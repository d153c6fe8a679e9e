"""WSMan SOAP for the simulated endpoint: parse a request envelope, act on a ``PsrpShell``, answer.

No sockets here (``wsman_http.py`` carries the bytes). Implements the subset of MS-WSMV that a
PowerShell Remoting client uses: Create, Command, Send, Receive, Signal, Delete and Get (server
config and shell state). The answer's RelatesTo always echoes the request's MessageID.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mia_bridge.sim.psrp_server import PsrpShell

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

_S, _WSA, _WSMAN, _RSP = NS["s"], NS["wsa"], NS["wsman"], NS["rsp"]
POWERSHELL_URI = "http://schemas.microsoft.com/powershell/"
CONFIG_URI = "http://schemas.microsoft.com/wbem/wsman/1/config"

# MS-WSMV fault codes pypsrp acts on.
FAULT_OPERATION_TIMEOUT = 0x80338029  # Receive had nothing before OperationTimeout: client polls again
FAULT_SHELL_NOT_FOUND = 0x8033805B
FAULT_INVALID_RESOURCE_URI = 0x8033803B
FAULT_ACCESS_DENIED = 5
FAULT_ENVELOPE_TOO_LARGE = 0x80338116  # the client's MaxEnvelopeSize is below what we must send

ENVELOPE_OVERHEAD = 2048  # bytes of SOAP around the base64 streams of one Receive response


class WSManFault(Exception):
    """A WSMan fault to send back (HTTP 500 with a WSManFault body)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SoapRequest:
    action: str  # the last path segment of wsa:Action (Create, Command, ...)
    message_id: str
    resource_uri: str
    max_envelope: int
    operation_timeout_s: float
    selectors: dict[str, str]
    body: ET.Element


def parse_request(data: bytes) -> SoapRequest:
    """The fields of a WSMan request envelope the simulator needs."""
    root = ET.fromstring(data)
    header = root.find("s:Header", NS)
    body = root.find("s:Body", NS)
    if header is None or body is None:
        raise WSManFault(0x80338000, "The WS-Management service cannot process the request: no SOAP header or body.")

    def text(path: str) -> str:
        node = header.find(path, NS)
        return (node.text or "") if node is not None else ""

    timeout = re.fullmatch(r"PT([0-9.]+)S", text("wsman:OperationTimeout"))
    selectors = {
        sel.attrib.get("Name", ""): sel.text or "" for sel in header.findall("wsman:SelectorSet/wsman:Selector", NS)
    }
    return SoapRequest(
        action=text("wsa:Action").rsplit("/", 1)[-1],
        message_id=text("wsa:MessageID"),
        resource_uri=text("wsman:ResourceURI"),
        max_envelope=int(text("wsman:MaxEnvelopeSize") or "153600"),
        operation_timeout_s=float(timeout.group(1)) if timeout else 20.0,
        selectors=selectors,
        body=body,
    )


def envelope(action: str, relates_to: str, body_children: list[ET.Element]) -> bytes:
    root = ET.Element(f"{{{_S}}}Envelope")
    header = ET.SubElement(root, f"{{{_S}}}Header")
    ET.SubElement(header, f"{{{_WSA}}}Action").text = action
    ET.SubElement(header, f"{{{_WSA}}}MessageID").text = f"uuid:{str(uuid.uuid4()).upper()}"
    ET.SubElement(header, f"{{{_WSA}}}RelatesTo").text = relates_to
    ET.SubElement(header, f"{{{_WSA}}}To").text = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    body = ET.SubElement(root, f"{{{_S}}}Body")
    body.extend(body_children)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def fault_envelope(fault: WSManFault, relates_to: str = "", machine: str = "127.0.0.1") -> bytes:
    """The SOAP fault pypsrp parses into WSManFaultError(code, reason)."""
    root = ET.Element(f"{{{_S}}}Envelope")
    header = ET.SubElement(root, f"{{{_S}}}Header")
    ET.SubElement(header, f"{{{_WSA}}}Action").text = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
    if relates_to:
        ET.SubElement(header, f"{{{_WSA}}}RelatesTo").text = relates_to
    body = ET.SubElement(root, f"{{{_S}}}Body")
    sfault = ET.SubElement(body, f"{{{_S}}}Fault")
    code = ET.SubElement(sfault, f"{{{_S}}}Code")
    ET.SubElement(code, f"{{{_S}}}Value").text = "s:Receiver"
    reason = ET.SubElement(sfault, f"{{{_S}}}Reason")
    ET.SubElement(reason, f"{{{_S}}}Text").text = fault.message
    detail = ET.SubElement(sfault, f"{{{_S}}}Detail")
    wsf = ET.SubElement(
        detail, f"{{{NS['wsmanfault']}}}WSManFault", attrib={"Code": str(fault.code), "Machine": machine}
    )
    ET.SubElement(wsf, f"{{{NS['wsmanfault']}}}Message").text = fault.message
    return ET.tostring(root, encoding="utf-8")


class WSManService:
    """The shells of one endpoint and the WSMan actions on them."""

    def __init__(
        self,
        open_session: Callable[[], Any],
        *,
        configuration_names: tuple[str, ...] = ("Microsoft.PowerShell",),
        max_envelope_kb: int = 500,
        on_call: Callable[[str, dict[str, Any]], None] | None = None,
        serialization_depth: int | None = 1,
        jea_endpoints: Mapping[str, Any] | None = None,
    ) -> None:
        self._open_session = open_session
        self.serialization_depth = serialization_depth
        # configuration name (lower case) -> sim.jea.JeaEndpoint: shells of that endpoint enforce JEA.
        self.jea_endpoints = {k.lower(): v for k, v in (jea_endpoints or {}).items()}
        self.configuration_names = tuple(n.lower() for n in configuration_names)
        self.max_envelope_kb = max_envelope_kb
        self._on_call = on_call
        self._shells: dict[str, PsrpShell] = {}
        self._lock = threading.Lock()
        self.action_counts: Counter[str] = Counter()  # for tests that count Receives

    def handle(self, data: bytes, user: str = "") -> bytes:
        """One request → one response envelope; raises WSManFault for faults."""
        req = parse_request(data)
        self.action_counts[req.action] += 1
        handler = getattr(self, f"_do_{req.action.lower()}", None)
        if handler is None:
            raise WSManFault(0x80338108, f"The WS-Management service does not support the action {req.action}.")
        children: list[ET.Element] = handler(req, user)
        return envelope(f"{_full_action(req.action)}Response", req.message_id, children)

    def close(self) -> None:
        with self._lock:
            for shell in self._shells.values():
                shell.close()
            self._shells.clear()

    # --- actions -------------------------------------------------------------------------------

    def _shell(self, req: SoapRequest) -> PsrpShell:
        shell_id = req.selectors.get("ShellId", "")
        with self._lock:
            shell = self._shells.get(shell_id.upper())
        if shell is None:
            raise WSManFault(
                FAULT_SHELL_NOT_FOUND,
                f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was "
                "not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no "
                "longer exists on the server.",
            )
        shell.fragment_size = self._payload_budget(req)
        return shell

    def _payload_budget(self, req: SoapRequest) -> int:
        """Bytes of PSRP data that fit one response: the smaller of the client's and our envelope."""
        envelope_size = min(req.max_envelope, self.max_envelope_kb * 1024)
        budget = (envelope_size - ENVELOPE_OVERHEAD) * 3 // 4
        if budget < 64:
            raise WSManFault(FAULT_ENVELOPE_TOO_LARGE, f"The MaxEnvelopeSize {req.max_envelope} is too small.")
        return budget

    def _do_create(self, req: SoapRequest, user: str) -> list[ET.Element]:
        if not req.resource_uri.lower().startswith(POWERSHELL_URI):
            raise WSManFault(FAULT_INVALID_RESOURCE_URI, f"The WS-Management service cannot process the resource URI "
                             f"{req.resource_uri}: only PowerShell sessions are served.")
        config_name = req.resource_uri[len(POWERSHELL_URI):]
        if config_name.lower() not in self.configuration_names:
            raise WSManFault(
                FAULT_INVALID_RESOURCE_URI,
                f"The WS-Management service cannot process the request. Cannot find the {config_name} session "
                "configuration in the WSMan: drive on the localhost computer.",
            )
        creation = req.body.find("rsp:Shell/pwsh:creationXml", NS)
        if creation is None or not creation.text:
            raise WSManFault(0x80338000, "The shell creation request has no creationXml.")
        shell = PsrpShell(self._open_session(), on_call=self._on_call, serialization_depth=self.serialization_depth,
                          jea=self.jea_endpoints.get(config_name.lower()))
        shell.fragment_size = self._payload_budget(req)
        shell.feed(base64.b64decode(creation.text))
        with self._lock:
            self._shells[shell.shell_id] = shell

        created = ET.Element(f"{{{NS['wst']}}}ResourceCreated")
        ET.SubElement(created, f"{{{_WSA}}}Address").text = "http://127.0.0.1/wsman"
        ref = ET.SubElement(created, f"{{{_WSA}}}ReferenceParameters")
        ET.SubElement(ref, f"{{{_WSMAN}}}ResourceURI").text = req.resource_uri
        sels = ET.SubElement(ref, f"{{{_WSMAN}}}SelectorSet")
        ET.SubElement(sels, f"{{{_WSMAN}}}Selector", Name="ShellId").text = shell.shell_id
        return [created, self._shell_info(shell, req.resource_uri, user)]

    def _shell_info(self, shell: PsrpShell, resource_uri: str, user: str) -> ET.Element:
        info = ET.Element(f"{{{_RSP}}}Shell")
        for tag, value in (
            ("ShellId", shell.shell_id),
            ("ResourceUri", resource_uri),
            ("Owner", user or "simulated"),
            ("ClientIP", "127.0.0.1"),
            ("IdleTimeOut", "PT7200.000S"),
            ("InputStreams", "stdin pr"),
            ("OutputStreams", "stdout"),
            ("State", "Connected"),
        ):
            ET.SubElement(info, f"{{{_RSP}}}{tag}").text = value
        return info

    def _do_command(self, req: SoapRequest, user: str) -> list[ET.Element]:
        shell = self._shell(req)
        line = req.body.find("rsp:CommandLine", NS)
        if line is None or "CommandId" not in line.attrib:
            raise WSManFault(0x80338000, "The Command request has no CommandLine with a CommandId.")
        command_id = line.attrib["CommandId"]
        args = line.find("rsp:Arguments", NS)
        shell.command(uuid.UUID(command_id), base64.b64decode(args.text or "") if args is not None else b"")
        resp = ET.Element(f"{{{_RSP}}}CommandResponse")
        ET.SubElement(resp, f"{{{_RSP}}}CommandId").text = command_id.upper()
        return [resp]

    def _do_send(self, req: SoapRequest, user: str) -> list[ET.Element]:
        shell = self._shell(req)
        for stream in req.body.findall("rsp:Send/rsp:Stream", NS):
            command_id = stream.attrib.get("CommandId")
            shell.feed(base64.b64decode(stream.text or ""), uuid.UUID(command_id) if command_id else None)
        return [ET.Element(f"{{{_RSP}}}SendResponse")]

    def _do_receive(self, req: SoapRequest, user: str) -> list[ET.Element]:
        shell = self._shell(req)
        desired = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.attrib.get("CommandId") if desired is not None else None
        target = uuid.UUID(command_id) if command_id else None
        chunks, done = shell.receive(target, shell.fragment_size, req.operation_timeout_s)
        if not chunks and not done:
            raise WSManFault(FAULT_OPERATION_TIMEOUT, "The WS-Management service cannot complete the operation within "
                             "the time specified in OperationTimeout.")
        resp = ET.Element(f"{{{_RSP}}}ReceiveResponse")
        for chunk in chunks:
            attrib = {"Name": "stdout"}
            if command_id:
                attrib["CommandId"] = command_id
            ET.SubElement(resp, f"{{{_RSP}}}Stream", attrib=attrib).text = base64.b64encode(chunk).decode()
        if command_id:
            state = "Done" if done else "Running"
            ET.SubElement(
                resp,
                f"{{{_RSP}}}CommandState",
                CommandId=command_id,
                State=f"http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/{state}",
            )
        return [resp]

    def _do_signal(self, req: SoapRequest, user: str) -> list[ET.Element]:
        shell = self._shell(req)
        signal = req.body.find("rsp:Signal", NS)
        code = signal.find("rsp:Code", NS) if signal is not None else None
        if signal is not None and code is not None and signal.attrib.get("CommandId"):
            shell.signal(uuid.UUID(signal.attrib["CommandId"]), code.text or "")
        return [ET.Element(f"{{{_RSP}}}SignalResponse")]

    def _do_delete(self, req: SoapRequest, user: str) -> list[ET.Element]:
        shell = self._shell(req)
        shell.close()
        with self._lock:
            self._shells.pop(shell.shell_id, None)
        return []

    def _do_get(self, req: SoapRequest, user: str) -> list[ET.Element]:
        if req.resource_uri.startswith(CONFIG_URI):
            config = ET.Element(f"{{{NS['cfg']}}}Config")
            ET.SubElement(config, f"{{{NS['cfg']}}}MaxEnvelopeSizekb").text = str(self.max_envelope_kb)
            ET.SubElement(config, f"{{{NS['cfg']}}}MaxTimeoutms").text = "60000"
            return [config]
        shell = self._shell(req)
        return [self._shell_info(shell, req.resource_uri, user)]


def _full_action(action: str) -> str:
    if action in ("Create", "Delete", "Get", "Put"):
        return f"http://schemas.xmlsoap.org/ws/2004/09/transfer/{action}"
    return f"http://schemas.microsoft.com/wbem/wsman/1/windows/shell/{action}"
