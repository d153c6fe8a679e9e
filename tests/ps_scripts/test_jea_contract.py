"""The contract between the bridge and the shipped JEA role capability, read with tree-sitter-powershell:
every command and parameter the bridge sent over PSRP, in every test of the session, is one the MiaBridge
endpoint exposes (a FunctionDefinitions function and a parameter of its ``param()`` block, or Select-Object
-Property, visible in every RestrictedRemoteServer session), and the values of a representative workload
pass the functions' validation.

Pipelines sent to a plain endpoint are checked as the bridge would send them to the JEA endpoint
(``bridge.endpoint.jea_call``), so a parameter added to a call anywhere in the product must be added to the
role capability too. ``tests/conftest.py`` records the pipelines and runs this test last.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.bridge.endpoint import JEA_CONNECT, JEA_DISCONNECT, jea_call, jea_function
from mia_bridge.collect.retry import RetryPolicy
from mia_bridge.enrich.mailbox_metadata import MailboxMetadata
from mia_bridge.investigate.directory import collect_directory
from mia_bridge.investigate.license import detect_license
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.handlers._params import COMMON_PARAMETERS
from mia_bridge.sim.jea import JeaEndpoint, bind_function
from mia_bridge.sim.registry import SimCmdletError, registered_handlers
from mia_bridge.sim.scenario import build_tenant

PSRC = Path(__file__).resolve().parents[2] / "ps_scripts" / "MiaBridgeAudit.psrc"
PARSER = Parser(Language(tree_sitter_powershell.language()))
# Visible in every RestrictedRemoteServer session; the bridge uses Select-Object -Property only.
DEFAULT_VISIBLE = {"select-object": {"property"}}
ENDPOINT = JeaEndpoint.load()

Pipeline = list[tuple[str, dict[str, object]]]


def _text(node: Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8")


def _children(node: Node, kind: str) -> list[Node]:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if current.type == kind:
            found.append(current)
        stack.extend(current.children)
    return found


def exposed_functions(path: Path = PSRC) -> dict[str, set[str]]:
    """FunctionDefinitions of a role capability: lower-case name -> lower-case parameter names."""
    source = path.read_bytes()
    tree = PARSER.parse(source)
    functions: dict[str, set[str]] = {}
    for table in _children(tree.root_node, "hash_literal_expression"):
        body = next((c for c in table.children if c.type == "hash_literal_body"), None)
        if body is None:
            continue
        entries = {}
        for entry in body.children:
            if entry.type != "hash_entry":
                continue
            key = next(c for c in entry.children if c.type == "key_expression")
            entries[_text(key, source).strip()] = entry
        if "Name" not in entries or "ScriptBlock" not in entries:
            continue
        name_node = _children(entries["Name"], "verbatim_string_characters")
        name = _text(name_node[0], source).strip("'")
        blocks = _children(entries["ScriptBlock"], "param_block")
        params = {
            _text(variable, source).lstrip("$").lower()
            for block in blocks
            for parameter in _children(block, "script_parameter")
            for variable in parameter.children
            if variable.type == "variable"
        }
        functions[name.lower()] = params
    return functions


def as_jea(kind: str, pipeline: Pipeline) -> Pipeline:
    """A pipeline as the bridge sends it to the JEA endpoint."""
    if kind == "jea":
        return pipeline
    name, params = pipeline[0]
    low = name.lower()
    if low == "connect-exchangeonline":
        keep = {"appid", "organization", "certificatethumbprint", "certificatefilepath", "certificatepassword",
                "exchangeenvironmentname"}
        return [(JEA_CONNECT, {k: v for k, v in params.items() if k.lower() in keep})]
    if low == "disconnect-exchangeonline":
        return [(JEA_DISCONNECT, {})]
    if low == "connect-mggraph":
        return []  # the functions connect Graph themselves
    call = jea_call(CmdletCall(name, params))
    stages = [(n, p) for n, p in pipeline[1:] if n.lower() != "convertto-json"]  # the functions emit JSON
    return [(call.name, dict(call.parameters)), *stages]


def product_commands() -> set[str]:
    """What the product may send: the simulator's model cmdlets (not test doubles registered by tests, nor
    the unknown commands tests send on purpose) and the JEA connection functions."""
    model = {n.lower() for n, h in registered_handlers().items() if h.__module__.startswith("mia_bridge.sim.handlers")}
    return model | {jea_function(n).lower() for n in model} | {JEA_CONNECT.lower(), JEA_DISCONNECT.lower()}


def violations(
    functions: dict[str, set[str]], sent: list[tuple[str, Pipeline]], *, values: bool = True
) -> list[str]:
    exposed = {**functions, **DEFAULT_VISIBLE}
    known = product_commands()
    problems: set[str] = set()
    for kind, pipeline in sent:
        if pipeline[0][0].lower() not in known:
            continue  # a test double or a deliberately unknown command, not something the product sends
        for name, params in as_jea(kind, pipeline):
            allowed = exposed.get(name.lower())
            if allowed is None:
                problems.add(f"{name} (from a {kind} pipeline starting {pipeline[0][0]}) is not exposed")
                continue
            unknown = [p for p in params if p.lower().lstrip("-") not in allowed | COMMON_PARAMETERS]
            for param in unknown:
                problems.add(f"{name} -{param} (from a {kind} pipeline) is not a parameter of the function")
            spec = ENDPOINT.functions.get(name.lower())
            if values and spec is not None and not unknown:
                # the values too: types, mandatory parameters, ValidateSet/ValidatePattern/ValidateRange
                try:
                    bind_function(spec, dict(params))
                except SimCmdletError as exc:
                    problems.add(f"{name} (from a {kind} pipeline starting {pipeline[0][0]}): {exc.message}")
    return sorted(problems)


def test_the_role_capability_is_read_with_tree_sitter() -> None:
    functions = exposed_functions()
    assert functions["search-miaunifiedauditlog"] >= {"startdate", "enddate", "sessionid", "sessioncommand",
                                                      "resultsize"}
    assert functions["get-miamgusermessage"] == {"userid", "internetmessageid", "receivedbefore", "all"}
    assert functions["connect-miatenant"] >= {"appid", "organization", "certificatethumbprint"}
    assert functions["get-miamgdomainfederationconfiguration"] == {"domainid"}


def test_the_check_can_fail() -> None:
    functions = exposed_functions()
    assert violations(functions, [("plain", [("Search-UnifiedAuditLog", {"StartDate": 1, "Force": True})])])
    assert violations(functions, [("jea", [("Search-UnifiedAuditLog", {"StartDate": 1})])])
    assert violations(functions, [("jea", [("Search-MiaUnifiedAuditLog", {"StartDate": 1, "Force": True})])])
    assert violations(functions, [("plain", [("Get-MgUserMessage", {"UserId": "a@b", "Top": 5})])])
    assert violations(functions, [("jea", [("Get-MiaMailbox", {}), ("Where-Object", {})])])
    day = datetime(2026, 10, 1, tzinfo=UTC)
    ok = {"StartDate": day, "EndDate": day, "ResultSize": 5000, "SessionCommand": "ReturnLargeSet"}
    assert not violations(functions, [("plain", [("Search-UnifiedAuditLog", ok)])])
    too_big = violations(functions, [("plain", [("Search-UnifiedAuditLog", {**ok, "ResultSize": 50000})])])
    assert len(too_big) == 1 and "maximum allowed range of 5000" in too_big[0]
    assert "missing mandatory parameters: StartDate" in violations(
        functions, [("plain", [("Search-UnifiedAuditLog", {"EndDate": day})])])[0]
    assert not violations(functions, [("plain", [("Get-Mailbox", {"ResultSize": 5}),
                                                 ("Select-Object", {"Property": ["Name"]})])])


def test_every_pipeline_the_bridge_sent_is_exposed_by_the_role_capability(
    sent_pipelines: list[tuple[str, Pipeline]], tmp_path: Path
) -> None:
    # A workload of its own, so that this test means something when run alone.
    tenant = build_tenant(records=200)
    conn = ConnectionSettings(transport="http", auth="basic", configuration_name="MiaBridge")
    before = len(sent_pipelines)
    with sim_session(conn, tenant=tenant) as session:
        detect_license(session.backend, [])
        collect_directory(session.backend, tmp_path)
        box = str(tenant.directory.mailboxes[0]["UserPrincipalName"])
        MailboxMetadata(session.backend, retry=RetryPolicy()).messages_before(box, datetime.now(UTC))
        session.backend.invoke(CmdletCall("Search-UnifiedAuditLog", {
            "StartDate": datetime(2026, 1, 1, tzinfo=UTC), "EndDate": datetime(2026, 2, 1, tzinfo=UTC),
            "ResultSize": 10}, select=("Identity",)))
    assert len(sent_pipelines) > before + 5, "the recorder (tests/conftest.py) saw nothing"
    kinds = {kind for kind, _ in sent_pipelines}
    assert "jea" in kinds
    # Names and parameters of everything sent in the session; the values of this test's own workload (other
    # tests send hostile or out-of-range values on purpose, which the endpoint rightly refuses).
    problems = violations(exposed_functions(), sent_pipelines, values=False)
    problems += violations(exposed_functions(), sent_pipelines[before:])
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("cmdlet", ["Search-UnifiedAuditLog", "Get-MgSubscribedSku", "Get-MgUserMessage"])
def test_every_function_the_bridge_maps_to_exists(cmdlet: str) -> None:
    assert jea_call(CmdletCall(cmdlet, {})).name.lower() in exposed_functions()
