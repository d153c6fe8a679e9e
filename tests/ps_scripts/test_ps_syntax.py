"""Every shipped PowerShell file parses cleanly with tree-sitter's PowerShell grammar, the check can
fail, and the JEA role capability exposes exactly the cmdlets the product (and the simulator) serve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from mia_bridge.sim.jea_parse import parse_data_file
from mia_bridge.sim.registry import registered_handlers

PS_DIR = Path(__file__).resolve().parents[2] / "ps_scripts"
SHIPPED = sorted(p for p in PS_DIR.iterdir() if p.suffix.lower() in (".ps1", ".psrc", ".pssc"))
PARSER = Parser(Language(tree_sitter_powershell.language()))


def syntax_problems(source: bytes) -> list[str]:
    """ERROR and MISSING nodes, as 'line:column kind text'."""
    problems = []
    stack = [PARSER.parse(source).root_node]
    while stack:
        node: Node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            text = source[node.start_byte : node.end_byte][:60].decode("utf-8", "replace")
            kind = "MISSING" if node.is_missing else "ERROR"
            problems.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1} {kind} {node.type} {text!r}")
        stack.extend(node.children)
    return problems


def test_all_expected_files_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert names == {"Install-MiaJumpHost.ps1", "Connect-MiaTenant.ps1", "MiaBridgeAudit.psrc", "MiaBridge.pssc"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_parses_without_errors(path: Path) -> None:
    assert syntax_problems(path.read_bytes()) == []


@pytest.mark.parametrize("broken", [
    b'param([string] $Name\nGet-Mailbox -Identity $Name\n',           # unclosed param block
    b'if ($x) {\n    Connect-ExchangeOnline -AppId $AppId\n',         # missing closing brace
    b'@{\n    VisibleCmdlets = @( "Get-Mailbox"\n}\n',                # unclosed array in a .psrc
    b'Write-Host "unterminated\n',                                      # unterminated string
])
def test_broken_scripts_are_detected(broken: bytes) -> None:
    assert syntax_problems(broken), broken


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_no_script_text_is_built_from_input(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in (r"Invoke-Expression", r"\biex\b", r"\[scriptblock\]::Create", r"AddScript", r"-ScriptBlock"):
        assert not re.search(pattern, text, re.IGNORECASE), pattern


def _role_capability_text() -> str:
    return (PS_DIR / "MiaBridgeAudit.psrc").read_text(encoding="utf-8")


def test_role_capability_wraps_only_simulated_cmdlets_and_makes_none_visible() -> None:
    """Exchange/Graph commands stay private under JEA: the role capability defines functions calling them."""
    from test_jea_contract import exposed_functions

    data = parse_data_file(_role_capability_text())
    assert "VisibleCmdlets" not in data and "VisibleFunctions" not in data
    functions = exposed_functions()
    # each function Verb-MiaNoun wraps the simulated cmdlet Verb-Noun (or is one of the connection helpers)
    simulated = {n.lower() for n, h in registered_handlers().items()
                 if h.__module__.startswith("mia_bridge.sim.handlers")}
    helpers = {"connect-miatenant", "initialize-miaconnection", "disconnect-miatenant"}
    wrapped = {name.replace("-mia", "-", 1) for name in functions if name not in helpers}
    missing = wrapped - simulated - {"get-mgdomainfederationconfiguration"}  # issue 13 adds it to the simulator
    assert missing == set()
    assert not {"remove-miamailbox", "set-miamailbox", "new-miainboxrule", "invoke-command"} & set(functions)


def test_role_capability_limits_parameters_in_the_functions() -> None:
    text = _role_capability_text()
    assert "[ValidateRange(1, 5000)]\n                    [int] $ResultSize" in text
    assert "[ValidateSet('ReturnLargeSet', 'ReturnNextPreviewPage')]" in text
    assert "[ValidateSet('True')]\n                    [string] $UnifiedAuditLogIngestionEnabled" in text
    # the certificate comes from the machine store as an object, never by thumbprint in the user's store
    assert "'Cert:\\LocalMachine\\My\\' + $CertificateThumbprint" in text
    bodies = [str(f["ScriptBlock"]) for f in parse_data_file(text)["FunctionDefinitions"]]
    # an error inside a function (a retired cmdlet, a throttled call) must fail the call, never leave a
    # silently partial answer with a non-terminating error the caller might not look at
    assert all("$ErrorActionPreference = 'Stop'" in body for body in bodies)
    connects = [line for body in bodies for line in body.splitlines()
                if re.search(r"Connect-(ExchangeOnline|MgGraph)", line)]
    assert connects and not any("Thumbprint" in line for line in connects)
    assert not any(re.search(r"^\s*CertificateThumbprint\s*=", body, re.MULTILINE) for body in bodies)
    assert sum("-Certificate $" in body or "Certificate = $c.Certificate" in body for body in bodies) >= 1
