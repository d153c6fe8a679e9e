"""The console layer: data to stdout, messages and progress to stderr, nothing hostile to either.

``build_console()`` is called once in ``main`` (``cli/app.py``) and handed to the commands (click's
``ctx.obj``; ``current_console()`` finds it). It knows each stream, whether it is a terminal and its width:

- Nothing written to a non-terminal is wrapped or coloured (logs keep whole paths; tests do not depend on
  ``COLUMNS``). On a terminal, lines are not wrapped either (the terminal does it), only tables and
  progress bars use the width.
- Text is never interpreted as rich markup, and every C0/C1 control character (ESC, BEL, CR, ... and the
  bidi overrides) is printed as a visible escape (``\\x1b``), so tenant data (rule and folder names, user
  agents, server errors) can neither drive the terminal (window title, clearing the screen, overwriting
  earlier lines) nor break the output. ``safe(value)`` also escapes line breaks: use it for a data value
  inside a message, so that a value cannot forge a line of its own.

Commands print with ``console.out.print(text)`` / ``console.err.print(text, style="red")``; progress bars
and tables take ``console.err.rich`` (a rich ``Console`` with markup off). The module-level ``out`` and
``err`` forward to the current console, for code written before it existed.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console as RichConsole
from rich.text import Text

# C0 (but \n, kept by print as a line break of the message itself), DEL, C1, and the Unicode bidi and
# direction controls (they reorder what the terminal shows: "Trojan Source", CVE-2021-42574).
_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_AND_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
UNWRAPPED_WIDTH = 10_000  # what rich is told for a non-terminal: no line is ever that long in practice


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: object) -> str:
    """``value`` as one line of plain text: every control character (line breaks included) as a visible escape."""
    return _CONTROLS_AND_NEWLINE.sub(_escape, str(value))


def escape_controls(text: str) -> str:
    """``text`` with every control character but the line break as a visible escape (the printing backstop)."""
    return _CONTROLS.sub(_escape, text)


@dataclass
class Stream:
    """One output stream: where it goes, whether it is a terminal, how wide (None: not a terminal)."""

    file: TextIO
    is_terminal: bool
    width: int | None
    color: bool
    _rich: RichConsole | None = field(default=None, repr=False)

    def print(self, *parts: object, style: str | None = None, end: str = "\n", sep: str = " ",
              markup: bool = False, highlight: bool = False, soft_wrap: bool = True) -> None:
        """Print ``parts`` as plain text (never markup, never wrapped), control characters escaped; ``style``
        (e.g. ``"green"``) colours it on a colour terminal. ``markup``/``highlight``/``soft_wrap`` are accepted
        for code written for rich and ignored."""
        text = escape_controls(sep.join(str(p) for p in parts))
        if style and self.color:
            self.rich.print(Text(text, style=style), end=end, soft_wrap=True)
            return
        self.file.write(text + end)
        self.file.flush()

    def write_line(self, line: str) -> None:
        """A line exactly as given (JSON lines: ``json.dumps`` already escapes every control character)."""
        self.file.write(escape_controls(line) + "\n")
        self.file.flush()

    def input(self, question: str) -> str:
        """Ask on this stream, read the answer from stdin (EOFError when there is none)."""
        self.print(question, end="")
        answer = sys.stdin.readline()
        if not answer:
            raise EOFError
        return answer

    @property
    def rich(self) -> RichConsole:
        """A rich console on this stream for progress bars and tables: markup and highlighting off; on a
        non-terminal no colour, no live updates and no wrapping."""
        if self._rich is None:
            self._rich = RichConsole(
                file=self.file, force_terminal=self.is_terminal, width=self.width or UNWRAPPED_WIDTH,
                no_color=not self.color, color_system="auto" if self.color else None, markup=False,
                highlight=False, emoji=False, soft_wrap=not self.is_terminal,
            )  # fmt: skip
        return self._rich


@dataclass
class Console:
    out: Stream
    err: Stream


def _isatty(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _stream(file: TextIO, environ: dict[str, str] | os._Environ[str]) -> Stream:
    terminal = _isatty(file)
    width: int | None = None
    if terminal:
        try:
            width = int(environ.get("COLUMNS", "")) or None
        except ValueError:
            width = None
        if width is None:
            try:
                width = os.get_terminal_size(file.fileno()).columns
            except (OSError, ValueError, AttributeError):
                width = 80
    color = terminal and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"
    return Stream(file, terminal, width, color)


def build_console(stdout: TextIO | None = None, stderr: TextIO | None = None,
                  environ: dict[str, str] | None = None) -> Console:
    """The console for this process's (or the given) streams."""
    env = os.environ if environ is None else environ
    return Console(_stream(stdout or sys.stdout, env), _stream(stderr or sys.stderr, env))


_current: Console | None = None


@contextmanager
def use_console(console: Console) -> Iterator[Console]:
    """Make ``console`` the current one (``main`` does this for the command it runs)."""
    global _current
    previous, _current = _current, console
    try:
        yield console
    finally:
        _current = previous


def current_console() -> Console:
    """The console ``main`` built (click's ``ctx.obj``), else one for the current streams."""
    import click

    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Console) if ctx is not None else None
    if obj is not None:
        return obj
    return _current if _current is not None else build_console()


class _Forward:
    """``out`` / ``err``: forward to the current console's stream (for code written before the layer)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(getattr(current_console(), self._name), attr)


out: Any = _Forward("out")
err: Any = _Forward("err")
