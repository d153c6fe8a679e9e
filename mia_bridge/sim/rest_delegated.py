"""Delegated sign-in on the simulated token service: device code (RFC 8628) and authorization code + PKCE.

- ``POST /{tid}/oauth2/v2.0/devicecode``: a device code and user code; the simulated user approves
  (or denies, or never answers) ``approve_after_s`` seconds later, so ``--sim --auth device-code`` runs
  unattended. Polling the token endpoint answers ``authorization_pending`` until then, ``slow_down``
  when polled faster than ``interval``, ``expired_token`` after ``expires_in``, ``access_denied`` when
  the user declined (RFC 8628 §3.5; Entra adds AADSTS codes).
- ``GET /{tid}/oauth2/v2.0/authorize``: the browser leg of the authorization-code flow; the user is
  signed in at once and the browser is redirected to the loopback ``redirect_uri`` with ``code`` and
  ``state`` (only ``http://localhost``/``127.0.0.1`` redirects, PKCE S256 required, as for a public
  client's "Mobile and desktop" platform).
- grants ``device_code``, ``authorization_code`` and ``refresh_token`` (one refresh token serves every
  resource, so one sign-in yields Exchange and Graph tokens); tokens carry ``scp`` (the public client's
  consented delegated permissions for the resource), ``upn``, ``oid`` and the user's roles (``wids``
  names here), which the admin API, Graph and the audit log query routes check.

Only public clients registered with "Allow public client flows" may use these grants (AADSTS7000218
otherwise, as Entra answers a confidential client that sends no secret).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mia_bridge.sim import rest_jwt
from mia_bridge.sim.rest_apps import RESOURCES
from mia_bridge.sim.rest_handler import RestHandlerBase

if TYPE_CHECKING:
    from mia_bridge.sim.rest_server import RestSimServer

DEFAULT_PUBLIC_CLIENT_ID = "9c2f8e11-4b7d-4f0a-8d63-2b1e6f5a7c90"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXO_DELEGATED = ("Exchange.Manage",)
GRAPH_DELEGATED = ("AuditLogsQuery.Read.All", "Organization.Read.All", "Directory.Read.All", "Application.Read.All",
                   "Domain.Read.All", "Mail.ReadBasic.All")
# Roles that can search the audit log (exchange-platform-facts.md §9: View-Only Audit Logs or Audit Logs,
# through Organization/Compliance Management or the Purview Audit Reader/Manager role groups).
AUDIT_SEARCH_ROLES = frozenset({
    "View-Only Audit Logs", "Audit Logs", "Organization Management", "Compliance Management", "Audit Reader",
    "Audit Manager", "Compliance Administrator", "Global Administrator", "Exchange Administrator",
})
# Roles that may run the read-only cmdlets and Graph reads the product uses besides the audit search.
READ_ROLES = AUDIT_SEARCH_ROLES | {"Global Reader", "Security Reader", "Security Administrator"}
# Cmdlets that need an audit search role (the rest need any read role).
AUDIT_CMDLETS = frozenset({"search-unifiedauditlog", "search-mailboxauditlog"})


@dataclass
class SimUser:
    upn: str
    roles: tuple[str, ...] = ("Compliance Administrator",)
    oid: str = ""

    def __post_init__(self) -> None:
        if not self.oid:
            self.oid = str(uuid.uuid5(uuid.NAMESPACE_URL, self.upn.lower()))


@dataclass
class SimPublicClient:
    client_id: str
    allow_public_flows: bool = True
    delegated: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"exo": EXO_DELEGATED, "graph": GRAPH_DELEGATED}
    )


@dataclass
class _DeviceCode:
    client_id: str
    scope: str
    user_code: str
    issued: float
    last_poll: float = 0.0


@dataclass
class DelegatedDirectory:
    """Users, public clients and the sign-in behaviour of the simulated user."""

    organization: str
    users: dict[str, SimUser] = field(default_factory=dict)
    clients: dict[str, SimPublicClient] = field(default_factory=dict)
    signing_in: str = ""  # UPN of the user who approves device codes and signs in in the browser
    decision: str = "approve"  # approve | deny | ignore (never answers: the code expires)
    approve_after_s: float = 0.3
    device_lifetime_s: int = 900
    interval_s: int = 1  # Entra says 5; the simulated user is fast and MSAL sleeps whole seconds
    codes: dict[str, _DeviceCode] = field(default_factory=dict)
    auth_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token → (client id, upn)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.users:
            default = SimUser(f"investigator@{self.organization}")
            self.users[default.upn.lower()] = default
            self.signing_in = self.signing_in or default.upn
        if not self.clients:
            self.clients[DEFAULT_PUBLIC_CLIENT_ID] = SimPublicClient(DEFAULT_PUBLIC_CLIENT_ID)

    def add_user(self, upn: str, roles: tuple[str, ...]) -> SimUser:
        user = SimUser(upn, roles)
        self.users[upn.lower()] = user
        return user

    def user(self, upn: str) -> SimUser | None:
        return self.users.get(upn.lower())


def _user_code() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))


def _resource(scope: str) -> str:
    """The resource of a scope list: ``https://graph.microsoft.com/.default offline_access`` → graph's URI."""
    for item in scope.split():
        if item in ("openid", "profile", "offline_access"):
            continue
        parts = urlsplit(item)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return ""


def denied_reason(sim: RestSimServer, claims: dict[str, Any], api: str, cmdlet: str = "") -> str | None:
    """Why a delegated token may not do this (None when allowed); app-only tokens are not judged here."""
    if "scp" not in claims:
        return None
    user = sim.delegated.user(str(claims.get("upn", "")))
    roles = set(user.roles) if user else set()
    if api == "audit":
        if not roles & AUDIT_SEARCH_ROLES:
            return ("The user is not authorized to search the audit log. Assign a role that includes View-Only Audit "
                    "Logs or Audit Logs (for example Audit Reader or Compliance Administrator).")
        return None
    needed = AUDIT_SEARCH_ROLES if cmdlet.lower() in AUDIT_CMDLETS else READ_ROLES
    if not roles & needed:
        return f"The user doesn't have the role needed to run {cmdlet or 'this operation'}."
    return None


class DelegatedRoutes(RestHandlerBase):
    """Device-code, authorize and the delegated grants of the token endpoint."""

    def _oauth_error(self, error: str, code: int, text: str, status: int = 400) -> None:
        self._send(status, {"error": error, "error_description": f"AADSTS{code}: {text}", "error_codes": [code]},
                   content_type="application/json; charset=utf-8")

    def _public_client(self, client_id: str) -> SimPublicClient | None:
        client = self.sim.delegated.clients.get(client_id.lower())
        if client is None:
            self._oauth_error("unauthorized_client", 700016, f"Application with identifier '{client_id}' was not "
                              f"found in the directory '{self.sim.organization}'.")
            return None
        if not client.allow_public_flows:
            self._oauth_error("invalid_client", 7000218, "The request body must contain the following parameter: "
                              "'client_assertion' or 'client_secret'.", status=401)
            return None
        return client

    def _devicecode(self, body: bytes) -> None:
        directory = self.sim.delegated
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if self._public_client(form.get("client_id", "")) is None:
            return
        device_code = secrets.token_urlsafe(32)
        user_code = _user_code()
        with directory.lock:
            directory.codes[device_code] = _DeviceCode(form["client_id"].lower(), form.get("scope", ""), user_code,
                                                       time.monotonic())
        verification = f"{self._origin()}/common/oauth2/deviceauth"
        self._send(200, {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": verification,
            "expires_in": directory.device_lifetime_s,
            "interval": directory.interval_s,
            "message": f"To sign in, use a web browser to open the page {verification} and enter the code "
                       f"{user_code} to authenticate.",
        }, content_type="application/json; charset=utf-8")

    def _authorize(self, query: dict[str, str]) -> None:
        directory = self.sim.delegated
        client = self._public_client(query.get("client_id", ""))
        if client is None:
            return
        redirect = query.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if parts.scheme != "http" or parts.hostname not in ("localhost", "127.0.0.1"):
            return self._oauth_error("invalid_request", 50011, f"The redirect URI '{redirect}' specified in the "
                                     "request does not match the redirect URIs configured for the application.")
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return self._oauth_error("invalid_request", 9002325, "Proof Key for Code Exchange is required for "
                                     "cross-origin authorization code redemption.")
        back: dict[str, str] = {"state": query.get("state", "")}
        if directory.decision != "approve":
            back.update(error="access_denied", error_description="AADSTS65004: User declined to consent.")
        else:
            code = secrets.token_urlsafe(24)
            with directory.lock:
                directory.auth_codes[code] = {"client_id": client.client_id, "redirect_uri": redirect,
                                              "challenge": query.get("code_challenge", ""),
                                              "nonce": query.get("nonce"), "upn": directory.signing_in,
                                              "scope": query.get("scope", "")}
            back["code"] = code
        if query.get("response_mode") == "form_post":
            # MSAL asks for form_post: a page whose form POSTs code and state to the loopback redirect
            inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
                             for k, v in back.items())
            page = (f'<html><body onload="document.forms[0].submit()"><form method="POST" '
                    f'action="{html.escape(redirect)}">{inputs}</form></body></html>')
            return self._send(200, page.encode(), content_type="text/html; charset=utf-8")
        self._send(302, None, headers={"Location": f"{redirect}?{urlencode(back)}"})

    def _delegated_grant(self, form: dict[str, str]) -> None:
        grant = form.get("grant_type", "")
        directory = self.sim.delegated
        entry_code: dict[str, Any] | None = None
        if grant not in (DEVICE_GRANT, "authorization_code", "refresh_token"):
            return self._oauth_error("unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client = self._public_client(form.get("client_id", ""))
        if client is None:
            return
        scope = form.get("scope", "")
        if grant == DEVICE_GRANT:
            with directory.lock:
                entry = directory.codes.get(form.get("device_code", ""))
                now = time.monotonic()
                if entry is None or entry.client_id != client.client_id:
                    return self._oauth_error("invalid_grant", 70000, "The provided value for the input parameter "
                                             "'device_code' is not valid.")
                age = now - entry.issued
                if age > directory.device_lifetime_s:
                    del directory.codes[form["device_code"]]
                    return self._oauth_error("expired_token", 70020, "The provided value for the input parameter "
                                             "'device_code' is not valid. This device code has expired.")
                too_soon = entry.last_poll and now - entry.last_poll < directory.interval_s * 0.9
                entry.last_poll = now
                if too_soon:
                    return self._oauth_error("slow_down", 70016, "Polling too frequently; slow down.")
                if directory.decision == "ignore" or age < directory.approve_after_s:
                    return self._oauth_error("authorization_pending", 70016, "OAuth 2.0 device flow error. "
                                             "Authorization is pending. Continue polling.")
                del directory.codes[form["device_code"]]
                scope = scope or entry.scope
            if directory.decision == "deny":
                # Entra's name for RFC 8628's access_denied (both end the flow)
                return self._oauth_error("authorization_declined", 70004, "The user declined the sign-in request.")
            upn = directory.signing_in
        elif grant == "authorization_code":
            with directory.lock:
                entry_code = directory.auth_codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (entry_code is None or entry_code["client_id"] != client.client_id
                    or entry_code["redirect_uri"] != form.get("redirect_uri") or challenge != entry_code["challenge"]):
                return self._oauth_error("invalid_grant", 70008, "The provided authorization code or refresh token "
                                         "has expired due to inactivity, or the PKCE verifier does not match.")
            upn = str(entry_code["upn"])
            scope = scope or str(entry_code["scope"])
        else:
            with directory.lock:
                found = directory.refresh_tokens.get(form.get("refresh_token", ""))
            if found is None or found[0] != client.client_id:
                return self._oauth_error("invalid_grant", 700082, "The refresh token has expired or was revoked.")
            upn = found[1]
        nonce = None
        if grant == "authorization_code" and entry_code is not None:
            nonce = entry_code.get("nonce")
        self._issue_delegated(client, upn, scope, nonce)

    def _issue_delegated(self, client: SimPublicClient, upn: str, scope: str, nonce: str | None = None) -> None:
        sim = self.sim
        user = sim.delegated.user(upn)
        if user is None:
            return self._oauth_error("invalid_grant", 50034, f"The user account {upn} does not exist.")
        resource = _resource(scope)
        api = RESOURCES.get(resource)
        if api is None:
            return self._oauth_error("invalid_scope", 500011, f"The resource principal named {resource} was not "
                                     "found in the tenant.")
        now = int(sim.clock())
        granted = client.delegated.get(api, ())
        claims = {
            "aud": resource, "iss": f"https://sts.windows.net/{sim.tenant_id}/", "iat": now, "nbf": now,
            "exp": now + sim.token_lifetime_s, "tid": sim.tenant_id, "appid": client.client_id, "oid": user.oid,
            "upn": user.upn, "name": user.upn.split("@")[0], "scp": " ".join(granted), "wids": list(user.roles),
            "ver": "1.0", "uti": secrets.token_urlsafe(16),
        }
        access = rest_jwt.sign_rs256(claims, sim._signing_key)
        id_token = rest_jwt.sign_rs256({
            "aud": client.client_id, "iss": f"{self._origin()}/{sim.tenant_id}/v2.0", "iat": now, "nbf": now,
            "exp": now + 3600, "oid": user.oid, "sub": user.oid, "tid": sim.tenant_id,
            "preferred_username": user.upn, "name": claims["name"], "ver": "2.0", **({"nonce": nonce} if nonce else {}),
        }, sim._signing_key)
        refresh = secrets.token_urlsafe(32)
        with sim.delegated.lock:
            sim.delegated.refresh_tokens[refresh] = (client.client_id, user.upn)
        with sim._lock:
            sim.tokens_issued += 1
        client_info = base64.urlsafe_b64encode(json.dumps({"uid": user.oid, "utid": sim.tenant_id}).encode())
        self._send(200, {
            "token_type": "Bearer", "scope": " ".join(f"{resource}/{s}" for s in granted),
            "expires_in": sim.token_lifetime_s, "ext_expires_in": sim.token_lifetime_s, "access_token": access,
            "refresh_token": refresh, "id_token": id_token, "client_info": client_info.rstrip(b"=").decode(),
        }, content_type="application/json; charset=utf-8")
