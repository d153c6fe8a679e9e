"""The simulated user's browser for ``--sim --auth browser``: follows the authorize URL, then the loopback redirect.

MSAL's ``acquire_token_interactive`` opens the system browser with ``webbrowser.open`` on the
authorize URL and waits on a loopback ``http://localhost:<port>`` listener. This "browser" is
registered as the preferred ``webbrowser`` controller: it GETs the authorize URL from the simulated
token service (HTTPS, its CA) and, as a browser would, submits the auto-posting form
(``response_mode=form_post``, what MSAL asks for) or follows the 302 to the loopback redirect, in a
thread so that MSAL's listener can answer. It only ever talks to 127.0.0.1/localhost.
"""

from __future__ import annotations

import html
import re
import ssl
import threading
import webbrowser
from pathlib import Path
from urllib.parse import urlsplit

import httpx

NAME = "mia-sim-browser"
_FORM = re.compile(r'<form method="POST" action="([^"]*)">(.*?)</form>', re.DOTALL)
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)"/>')
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class SimBrowser(webbrowser.BaseBrowser):
    """A ``webbrowser`` controller that plays the user signing in at the simulated tenant."""

    def __init__(self, ca_path: Path) -> None:
        super().__init__(NAME)
        self.ca_path = ca_path
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        if urlsplit(url).hostname not in _LOOPBACK:
            return False  # never leave the machine
        self.opened.append(url)
        threading.Thread(target=self._follow, args=(url,), daemon=True).start()
        return True

    def _follow(self, url: str) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        with httpx.Client(verify=context, timeout=30.0, follow_redirects=False) as client:
            answer = client.get(url)
            location = answer.headers.get("Location")
            if answer.status_code in (301, 302, 303) and location and urlsplit(location).hostname in _LOOPBACK:
                client.get(location)
                return
            form = _FORM.search(answer.text) if answer.status_code == 200 else None
            if form and urlsplit(html.unescape(form.group(1))).hostname in _LOOPBACK:  # response_mode=form_post
                fields = {html.unescape(k): html.unescape(v) for k, v in _INPUT.findall(form.group(2))}
                client.post(html.unescape(form.group(1)), data=fields)


def register_sim_browser(ca_path: Path) -> SimBrowser:
    """Make the simulated user's browser the one ``webbrowser.open`` uses in this process."""
    browser = SimBrowser(ca_path)
    webbrowser.register(NAME, None, browser, preferred=True)
    return browser
