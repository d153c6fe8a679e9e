"""PSRP server side of the simulated tenant: psrpcore's ServerRunspacePool ↔ ``registry.dispatch``.

No I/O here. ``PsrpShell`` is one WinRS shell (one runspace pool, one tenant session); the WSMan
layer feeds it the base64-decoded fragments of Create/Command/Send and asks it for the fragments to
put in each Receive response. Pipelines run on a worker thread so that a slow cmdlet makes the
client long-poll (WSMan OperationTimeout faults) exactly as against a real WinRM endpoint.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psrpcore
from psrpcore._payload import PSRPMessage, create_message
from psrpcore.types import PSInvocationState

from mia_bridge.sim.clixml_writer import object_clixml
from mia_bridge.sim.convert_json import convert_to_json
from mia_bridge.sim.handlers._params import COMMON_PARAMETERS, Params
from mia_bridge.sim.jea import JeaEndpoint, JeaRunspace
from mia_bridge.sim.psrp_values import decode_parameters, encode_object, error_record
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, command_not_found, dispatch, is_string
from mia_bridge.sim.serialization_depth import REMOTING_DEPTH, at_depth

# Built-in cmdlets the simulator implements itself as later pipeline stages (module-qualified or not).
_UTILITY = "microsoft.powershell.utility\\"
_SELECT_OBJECT = "select-object"
_CONVERT_TO_JSON = "convertto-json"

Dispatcher = Callable[[Any, str, dict[str, Any]], SimOutput]


class _Serialized:
    """An output object already written as CLIXML (see ``clixml_writer``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _SimRunspacePool(psrpcore.ServerRunspacePool):
    """psrpcore's server pool, accepting pre-serialized pipeline output (the hot path)."""

    def prepare_message(  # type: ignore[override]
        self,
        message: Any,
        message_type: psrpcore.types.PSRPMessageType | None = None,
        pipeline_id: uuid.UUID | None = None,
        stream_type: psrpcore.StreamType = psrpcore.StreamType.default,
    ) -> None:
        if not isinstance(message, _Serialized):
            super().prepare_message(message, message_type, pipeline_id, stream_type)
            return
        kind = psrpcore.types.PSRPMessageType.PipelineOutput
        b_msg = create_message(False, kind, message.data, self.runspace_pool_id, pipeline_id)
        self._send_buffer.append(
            PSRPMessage(kind, bytearray(b_msg), self.runspace_pool_id, pipeline_id, self._fragment_counter, stream_type)
        )


@dataclass
class _Target:
    """Outgoing fragments for one Receive target (the pool, or one pipeline)."""

    chunks: deque[bytes] = field(default_factory=deque)
    done: bool = False  # the pipeline reached a final state and every message was produced


class PsrpShell:
    """One runspace pool bound to one tenant session.

    Thread-safe: the WSMan layer may call it from several HTTP worker threads while a pipeline
    thread writes output.
    """

    def __init__(
        self,
        session: Any,
        *,
        dispatcher: Dispatcher = dispatch,
        on_call: Callable[[str, dict[str, Any]], None] | None = None,
        serialization_depth: int | None = REMOTING_DEPTH,
        jea: JeaEndpoint | None = None,
    ) -> None:
        self.shell_id = str(uuid.uuid4()).upper()
        self.session = session
        self._dispatch = dispatcher
        self._on_call = on_call
        # Output objects are serialized as remoting does (depth 1); None keeps every level (tests only).
        self.serialization_depth = serialization_depth
        # A JEA endpoint resolves every command through its role capability (sim/jea.py).
        self.jea = JeaRunspace(jea, session) if jea is not None else None
        self._pool = _SimRunspacePool(
            application_private_data={"PSVersionTable": {"PSVersion": "5.1.20348.2849", "PSEdition": "Desktop"}}
        )
        self._cond = threading.Condition()
        self._targets: dict[uuid.UUID | None, _Target] = {None: _Target()}
        self.closed = False
        # Bytes per outgoing payload; the WSMan layer sets it from the envelope size so that each
        # payload fits one Receive response.
        self.fragment_size = 64 * 1024

    # --- input from the client --------------------------------------------------------------

    def feed(self, data: bytes, pipeline_id: uuid.UUID | None = None) -> None:
        """Fragments from creationXml, Command arguments or Send stdin."""
        with self._cond:
            self._pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, pipeline_id))
            while (event := self._pool.next_event()) is not None:
                if isinstance(event, psrpcore.CreatePipelineEvent):
                    self._start_pipeline(event.pipeline_id)
            self._cond.notify_all()

    def command(self, pipeline_id: uuid.UUID, data: bytes) -> None:
        """A WSMan Command: the pipeline object must exist before its first fragment arrives."""
        with self._cond:
            psrpcore.ServerPipeline(self._pool, pipeline_id)
            self._targets[pipeline_id] = _Target()
        self.feed(data, pipeline_id)

    def signal(self, pipeline_id: uuid.UUID, code: str) -> None:
        """Signal terminate or ctrl_c: stop (if running) and forget the pipeline."""
        with self._cond:
            pipe = self._pool.pipeline_table.get(pipeline_id)
            if pipe is not None and code.endswith("ctrl_c") and pipe.state == PSInvocationState.Running:
                pipe.stop()
                self._drain()
            if code.endswith("terminate"):
                if pipe is not None:
                    pipe.close()
                self._targets.pop(pipeline_id, None)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # --- output to the client ---------------------------------------------------------------

    def receive(self, pipeline_id: uuid.UUID | None, max_bytes: int, wait_s: float) -> tuple[list[bytes], bool]:
        """Up to ``max_bytes`` of fragments for one target, waiting up to ``wait_s`` for any.

        Returns (chunks, done); ``done`` means the pipeline finished and nothing more will come.
        An empty list with ``done`` False is the WSMan OperationTimeout case.
        """
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                self._drain()
                target = self._targets.get(pipeline_id)
                if target is None:
                    return [], True
                if target.chunks or target.done or self.closed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], False
                self._cond.wait(remaining)
            out: list[bytes] = []
            used = 0
            while target.chunks and (not out or used + len(target.chunks[0]) <= max_bytes):
                chunk = target.chunks.popleft()
                out.append(chunk)
                used += len(chunk)
            return out, target.done and not target.chunks

    def _drain(self) -> None:
        """Move psrpcore's single send buffer into per-target queues (caller holds the lock)."""
        while (payload := self._pool.data_to_send(self.fragment_size)) is not None:
            target = self._targets.setdefault(payload.pipeline_id, _Target())
            target.chunks.append(payload.data)

    # --- running pipelines ------------------------------------------------------------------

    def _start_pipeline(self, pipeline_id: uuid.UUID) -> None:
        pipe = self._pool.pipeline_table[pipeline_id]
        pipe.start()
        threading.Thread(target=self._run_pipeline, args=(pipe,), name=f"psrp-{pipeline_id}", daemon=True).start()

    def _run_pipeline(self, pipe: psrpcore.ServerPipeline) -> None:
        try:
            statements = _statements(getattr(pipe.metadata, "commands", None) or [])
            for statement in statements:
                output = self._run_statement(statement)
                self._emit(pipe, output)
        except SimCmdletError as exc:
            self._finish(pipe, error=exc)
        except Exception as exc:  # a handler bug must reach the client as an error, not hang it
            self._finish(pipe, error=SimCmdletError(f"simulator internal error: {type(exc).__name__}: {exc}"))
        else:
            self._finish(pipe)

    def _run_statement(self, commands: list[Any]) -> SimOutput:
        first = commands[0]
        if first.is_script:
            raise SimCmdletError(
                "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
                category="ParserError",
                error_id="ScriptsNotAllowed",
                exception_type="System.Management.Automation.PSInvalidOperationException",
            )
        name = str(first.command_text)
        params = decode_parameters(name, first.parameters)
        if self._on_call is not None:
            self._on_call(name, params)
        output = self.jea.run(name, params) if self.jea is not None else self._dispatch(self.session, name, params)
        for later in commands[1:]:
            later_name = str(later.command_text)
            key = later_name.lower().removeprefix(_UTILITY)
            if later.is_script or key not in (_SELECT_OBJECT, _CONVERT_TO_JSON):
                raise SimCmdletError(
                    f"The simulator only supports Select-Object and ConvertTo-Json after a cmdlet, not '{later_name}'.",
                    category="InvalidOperation",
                    error_id="UnsupportedPipelineStage",
                )
            if self.jea is not None and not self.jea.endpoint.is_visible(key):
                raise command_not_found(later_name)
            later_params = decode_parameters(later_name, later.parameters)
            stage = _select if key == _SELECT_OBJECT else convert_to_json
            output = stage(output, later_params)
        return output

    def _emit(self, pipe: psrpcore.ServerPipeline, output: SimOutput) -> None:
        with self._cond:
            for text in output.warnings:
                pipe.write_warning(text)
            for full in output.objects:
                if is_string(full):
                    pipe.write_output(full.text)
                    continue
                obj = at_depth(full, self.serialization_depth)
                data = object_clixml(obj)
                pipe.write_output(_Serialized(data) if data is not None else encode_object(obj))
            for err in output.errors:
                record = error_record(err)
                pipe.write_error(
                    record.Exception,
                    record.CategoryInfo,
                    target_object=err.target or None,
                    fully_qualified_error_id=record.FullyQualifiedErrorId,
                )
            self._cond.notify_all()

    def _finish(self, pipe: psrpcore.ServerPipeline, error: SimCmdletError | None = None) -> None:
        with self._cond:
            if pipe.state == PSInvocationState.Running:
                if error is None:
                    pipe.complete()
                else:
                    # psrpcore has no public "fail"; a Failed state carrying the ErrorRecord is what
                    # PowerShell sends for a terminating error.
                    pipe._change_state(PSInvocationState.Failed, error=error_record(error))
            self._drain()
            target = self._targets.get(pipe.pipeline_id)
            if target is not None:
                target.done = True
            self._cond.notify_all()


def _statements(commands: Iterable[Any]) -> list[list[Any]]:
    """Split a pipeline's commands at end-of-statement markers (``add_statement``)."""
    statements: list[list[Any]] = [[]]
    for cmd in commands:
        statements[-1].append(cmd)
        if cmd.end_of_statement:
            statements.append([])
    return [s for s in statements if s]


# Select-Object's parameters (Microsoft.PowerShell.Utility); the simulator models -Property only and refuses
# the others rather than ignore them (ignoring -First would return more than asked).
_SELECT_PARAMETERS = ("Property", "ExcludeProperty", "ExpandProperty", "Unique", "Last", "First", "Skip", "SkipLast",
                      "Wait", "Index", "InputObject", "CaseInsensitive", "SkipIndex")


def _select(output: SimOutput, params: dict[str, Any]) -> SimOutput:
    p = Params("Select-Object", params, _SELECT_PARAMETERS)
    modelled = {"property"} | COMMON_PARAMETERS
    unmodelled = [name for name in params if name.lower().lstrip("-") not in modelled]
    if unmodelled:
        raise SimCmdletError(
            f"The simulator models Select-Object -Property only, not -{unmodelled[0]}.",
            category="NotImplemented",
            error_id="SimulatorUnsupportedParameter,Select-Object",
        )
    props = p.raw("Property")
    if props is None:
        return output
    wanted = [props] if isinstance(props, str) else [str(p) for p in props]
    objects = [
        SimObject(
            type_names=["Selected." + o.type_names[0], "System.Management.Automation.PSCustomObject"]
            if o.type_names
            else ["System.Management.Automation.PSCustomObject"],
            properties={p: o.properties.get(p) for p in wanted},
        )
        for o in output.objects
    ]
    return SimOutput(objects=objects, warnings=output.warnings, errors=output.errors)


