"""The console layer: built once in main, never wraps a non-terminal, never lets a control character or
rich markup from tenant data reach the terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mia_bridge.bridge.backend import CmdletCall, CmdletResult
from mia_bridge.cli import console as console_mod
from mia_bridge.cli.app import main
from mia_bridge.cli.commands import doctor
from mia_bridge.cli.console import Stream, build_console, escape_controls, safe
from mia_bridge.errors import CmdletError

HOSTILE = "rule \x1b]0;owned\x07 \x1b[2J\x1b[1A\x1b[2K \x9b31m [bold]x[/] [/] \u202eevil\r\nFORGED LINE"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_safe_escapes_every_control_character_visibly() -> None:
    text = safe(HOSTILE)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
    assert "\\x1b]0;owned\\x07" in text and "\\x9b31m" in text and "\\u202e" in text
    assert "\\r\\nFORGED LINE" in text  # a value cannot start a line of its own
    assert "[bold]x[/]" in text  # markup is just text


@given(st.text())
def test_no_control_character_survives(value: str) -> None:
    for escaped in (safe(value), escape_controls(value)):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in escaped)
    assert "\n" not in safe(value)


def test_non_terminal_is_never_wrapped_whatever_columns_says() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = build_console(out, err, environ={"COLUMNS": "40"})
    assert not console.err.is_terminal and console.err.width is None
    long_path = "/tmp/" + "very-long-folder-name/" * 10 + "case"
    console.err.print(f"interrupted: the case in {long_path} is kept; rerun the same command to resume")
    assert err.getvalue() == f"interrupted: the case in {long_path} is kept; rerun the same command to resume\n"
    table = doctor.render([doctor.Check("x" * 30, doctor.OK, "detail " * 40)])
    console.out.rich.print(table)
    assert any(("detail " * 40).strip() in line for line in out.getvalue().splitlines())  # one row, not folded


def test_terminal_knows_its_width_and_colours_but_still_escapes() -> None:
    tty = _Tty()
    stream = build_console(tty, tty, environ={"COLUMNS": "40", "TERM": "xterm"}).out
    assert stream.is_terminal and stream.width == 40 and stream.color
    stream.print(HOSTILE, style="red")
    written = tty.getvalue()
    # the only ESC bytes are rich's own colour codes (SGR), never the data's
    assert "]0;owned" not in written.replace("\\x1b]0;owned", "")
    assert "\\x1b]0;owned\\x07" in written and "\x07" not in written and "\x9b" not in written


def test_markup_in_a_server_error_is_text_in_doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Backend:
        def describe(self) -> dict[str, str]:
            return {"backend": "psrp", "endpoint": "https://jump01/wsman", "auth": "negotiate"}

        def invoke(self, call: CmdletCall) -> CmdletResult:
            raise CmdletError(f"[bold]denied[/] by [/] \x1b]0;owned\x07 {call.name}", cmdlet=call.name)

    checks = doctor.run_checks(Backend())  # type: ignore[arg-type]
    stream = Stream(io.StringIO(), False, None, False)
    stream.rich.print(doctor.render(checks))  # MarkupError before: "[/]" closes nothing
    text = stream.file.getvalue()  # type: ignore[attr-defined]
    assert "[bold]denied[/] by [/]" in text and "\x1b" not in text and "\\x1b]0;owned\\x07" in text


def test_main_builds_the_console_and_hands_it_to_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[console_mod.Console] = []
    seen: list[console_mod.Console] = []

    def build() -> console_mod.Console:
        built.append(build_console())
        return built[-1]

    def spy() -> console_mod.Console:
        seen.append(console_mod.current_console())
        return seen[-1]

    monkeypatch.setattr("mia_bridge.cli.app.build_console", build)
    monkeypatch.setattr("mia_bridge.cli.commands.verify.current_console", spy)
    monkeypatch.setenv("COLUMNS", "40")
    assert main(["verify", "/nonexistent/" + "x" * 80]) == 1
    assert len(built) == len(seen) == 1 and seen[0] is built[0]  # handed on by click's ctx.obj
    assert "x" * 80 in capsys.readouterr().err  # not wrapped at 40 columns: stderr is not a terminal


def test_an_error_message_with_escapes_reaches_stderr_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = tmp_path / "case\x1b]0;owned\x07"
    case.mkdir()
    assert main(["verify", str(case)]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.err + captured.out
    assert "case\\x1b]0;owned\\x07" in captured.err
