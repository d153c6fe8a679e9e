"""PowerShell string literals for text shown to a person (hints such as "Cmdlet needs proxy"; never executed).

PowerShell's tokenizer takes five characters as a single quote: ``'`` and the typographic ``‘ ’ ‚ ‛``
(U+2018, U+2019, U+201A, U+201B: ``CharExtensions.IsSingleQuote`` in PowerShell's
``src/System.Management.Automation/engine/parser/CharTraits.cs``); any of them ends a single-quoted string,
and two in a row stand for one. A value that closes the string with ``’`` would run the rest of the line, so
each of the five is doubled, as PowerShell's own ``CodeGeneration.EscapeSingleQuotedStringContent`` does.
"""

from __future__ import annotations

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"


def quote_single(text: str) -> str:
    """``text`` as a PowerShell single-quoted string literal whose value is exactly ``text``."""
    return "'" + "".join(c + c if c in SINGLE_QUOTES else c for c in text) + "'"
