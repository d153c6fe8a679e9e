"""Delegated sign-in for the REST backend: a responder's own account, through MSAL's public client.

Two ways, as Connect-ExchangeOnline offers them:
- ``device-code``: MSAL ``initiate_device_flow`` / ``acquire_token_by_device_flow``
  (https://learn.microsoft.com/entra/msal/python/ "device code flow"; RFC 8628 §3.4–3.5): the
  verification URL and code are printed, the token endpoint is polled every ``interval`` seconds
  while it answers ``authorization_pending``, five seconds slower after ``slow_down``, and the
  flow ends on ``expired_token`` or ``access_denied`` (Entra: ``authorization_declined``);
- ``browser``: MSAL ``acquire_token_interactive``: the system browser opens the authorize URL and
  the code comes back to a loopback ``http://localhost:<port>`` redirect (PKCE).

One sign-in serves both APIs: the first token is for the Exchange admin API; Graph's comes from the
same refresh token (``acquire_token_silent``), without a second prompt. Tokens live in the MSAL
cache chosen by ``token_cache`` (encrypted by default); a later run with the same cache signs in
silently. The app registration needs "Allow public client flows", the ``http://localhost`` redirect
for ``browser``, delegated ``Exchange.Manage`` (Office 365 Exchange Online) and the Graph delegated
permissions of the features used (README, "Delegated sign-in").
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msal
import msal.exceptions
import requests

from mia_bridge.bridge.backend import Secret
from mia_bridge.bridge.clouds import Cloud
from mia_bridge.bridge.rest_auth import TokenProvider, _PinnedVerifySession, is_loopback
from mia_bridge.bridge.token_cache import CacheChoice, open_cache
from mia_bridge.errors import BridgeAuthError, BridgeTLSError, BridgeTransportError

log = logging.getLogger(__name__)

FLOWS = ("device-code", "browser")


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class DelegatedLogin:
    """Who signs in and how. ``login_hint`` picks the account (and pre-fills the sign-in page)."""

    client_id: str
    flow: str = "device-code"
    login_hint: str | None = None
    cache: CacheChoice = field(default_factory=CacheChoice)
    timeout_s: float = 900.0  # Entra's device codes live 15 minutes
    prompt: Callable[[str], None] = _stderr

    def describe(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "flow": self.flow, "token_cache": self.cache.describe()}


class DelegatedTokenProvider(TokenProvider):
    """Bearer tokens of the signed-in user, per resource scope; the same interface as the app-only provider."""

    def __init__(
        self,
        login: DelegatedLogin,
        cloud: Cloud,
        tenant_id: str,
        *,
        verify: str | bool = True,
        refresh_margin_s: float = 300.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # TokenProvider.__init__ builds a confidential client; this provider builds a public one instead.
        self.login = login
        self.cloud = cloud
        self.tenant_id = tenant_id
        self.refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._expires: dict[str, float] = {}
        self._force_refresh = False
        self._lock = threading.Lock()
        self.acquired = 0
        self.prompts = 0  # interactive sign-ins this run (0 when the cache signed us in)
        self.account: dict[str, Any] | None = None
        authority = cloud.authority(tenant_id)
        try:
            self._app = msal.PublicClientApplication(
                login.client_id,
                authority=authority,
                token_cache=open_cache(login.cache),
                http_client=_PinnedVerifySession(verify),
                timeout=timeout,
                instance_discovery=False if is_loopback(authority) else None,
            )
        except requests.exceptions.SSLError:
            raise BridgeTLSError(f"{cloud.login_url}: certificate verification failed", hint="check --ca-bundle") \
                from None
        except requests.exceptions.RequestException as exc:
            raise BridgeTransportError(f"{cloud.login_url}: cannot reach the authority ({type(exc).__name__})") \
                from None
        except (msal.exceptions.MsalError, ValueError) as exc:
            raise BridgeAuthError(f"cannot set up the sign-in client: {exc}") from None

    @property
    def username(self) -> str | None:
        return str(self.account.get("username")) if self.account else None

    # --- sign-in --------------------------------------------------------------------------------

    def sign_in(self) -> None:
        """Use a cached sign-in when there is one for this user; otherwise run the chosen flow."""
        scope = self.cloud.exo_scope
        accounts = self._app.get_accounts(username=self.login.login_hint) if self.login.login_hint \
            else self._app.get_accounts()
        if len(accounts) > 1:
            names = ", ".join(sorted(str(a.get("username")) for a in accounts))
            raise BridgeAuthError(
                f"the token cache holds several signed-in accounts ({names})",
                hint="name one with --username UPN, or sign them out with `mia logout`",
            )
        if accounts:
            result = self._call(lambda: self._app.acquire_token_silent([scope], account=accounts[0]))
            if result and "access_token" in result:
                self.account = accounts[0]
                self._remember(scope, result)
                log.info("signed in from the token cache as %s", self.username)
                return
        result = self._device_code(scope) if self.login.flow == "device-code" else self._browser(scope)
        self.prompts += 1
        self._check(result, "sign-in")
        accounts = self._app.get_accounts(username=self._claim(result, "preferred_username"))
        self.account = accounts[0] if accounts else {"username": self._claim(result, "preferred_username")}
        self._remember(scope, result)

    def _device_code(self, scope: str) -> dict[str, Any]:
        flow = self._call(lambda: self._app.initiate_device_flow(scopes=[scope]))
        if "user_code" not in flow:
            self._check(flow, "device code request")
        self.login.prompt(str(flow.get("message") or (
            f"To sign in, open {flow.get('verification_uri')} and enter the code {flow.get('user_code')}")))
        deadline = time.time() + self.login.timeout_s
        flow["expires_at"] = min(float(flow.get("expires_at", deadline)), deadline)
        # MSAL polls every `interval` s, waits 5 s more after slow_down, and returns any other answer.
        result: dict[str, Any] = self._call(lambda: self._app.acquire_token_by_device_flow(flow))
        error = result.get("error")
        if error in ("authorization_pending", "slow_down"):  # the deadline passed while still pending
            raise BridgeAuthError("the sign-in was not completed in time (the device code expired)",
                                  hint="run the command again and enter the new code promptly")
        if error == "expired_token":
            raise BridgeAuthError("the device code expired before the sign-in was completed",
                                  hint="run the command again and enter the new code within 15 minutes")
        if error in ("access_denied", "authorization_declined"):
            raise BridgeAuthError("the sign-in was declined on the verification page",
                                  hint="run the command again and approve the sign-in with the investigating account")
        return result

    def _browser(self, scope: str) -> dict[str, Any]:
        self.login.prompt("Opening the system browser to sign in (a loopback redirect brings the answer back) ...")
        result: dict[str, Any] = self._call(lambda: self._app.acquire_token_interactive(
            [scope], login_hint=self.login.login_hint, prompt="select_account", timeout=int(self.login.timeout_s),
        ))
        if result.get("error") in ("access_denied", "authorization_declined"):
            raise BridgeAuthError("the sign-in was declined in the browser",
                                  hint="run the command again and approve the sign-in with the investigating account")
        return result

    # --- tokens ---------------------------------------------------------------------------------

    def token(self, scope: str) -> Secret:
        """A bearer token for ``scope`` from the signed-in account (MSAL refreshes it before expiry)."""
        with self._lock:
            if self.account is None:
                self.sign_in()
            assert self.account is not None
            force, self._force_refresh = self._force_refresh, False
            account = self.account
            result = self._call(lambda: self._app.acquire_token_silent([scope], account=account, force_refresh=force))
            if not result or "access_token" not in result:
                self._check(result or {"error": "interaction_required",
                                       "error_description": "the sign-in is no longer valid"}, f"token for {scope}")
            assert result is not None
            self._remember(scope, result)
            return Secret(str(result["access_token"]))

    def _remember(self, scope: str, result: dict[str, Any]) -> None:
        if result.get("token_source") != "cache":
            self.acquired += 1
        self._expires[scope] = self._clock() + float(result.get("expires_in", 0))

    def expires_at(self, scope: str) -> float | None:
        return self._expires.get(scope)

    def invalidate(self) -> None:
        """After a 401: the next token() asks the token service instead of the cache."""
        self._force_refresh = True
        self._expires.clear()

    # --- helpers --------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except requests.exceptions.SSLError:
            raise BridgeTLSError(f"{self.cloud.login_url}: certificate verification failed") from None
        except requests.exceptions.RequestException as exc:
            raise BridgeTransportError(f"{self.cloud.login_url}: sign-in request failed ({type(exc).__name__})") \
                from None
        except msal.exceptions.MsalServiceError as exc:
            raise BridgeTransportError(f"{self.cloud.login_url}: the token service is failing ({exc})") from None

    @staticmethod
    def _claim(result: dict[str, Any], name: str) -> str | None:
        claims = result.get("id_token_claims") or {}
        value = claims.get(name) if isinstance(claims, dict) else None
        return str(value) if value else None

    def _check(self, result: dict[str, Any], what: str) -> None:
        if "access_token" in result:
            return
        error = str(result.get("error") or "no_token")
        desc = " ".join(str(result.get("error_description", "")).splitlines()[:1])
        hint = ("check --client-id (a public-client app registration with 'Allow public client flows'), the "
                "delegated permissions it was consented, and that this account may use it")
        if error in ("interaction_required", "invalid_grant"):
            hint = "the cached sign-in expired or was revoked: run `mia logout`, then sign in again"
        raise BridgeAuthError(f"{what} for app {self.login.client_id} failed: {error}: {desc}".rstrip(": "), hint=hint)
