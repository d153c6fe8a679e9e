"""HTTP plumbing shared by the admin-API and Graph clients: bearer auth, retries, redirects, bodies.

Retry policy follows the ExchangeOnlineManagement module: up to ``max_retries`` retries, waiting
``Retry-After`` (decimal seconds) when the server gives one, else ``backoff_s × 2ⁿ``; 429, 5xx,
connection drops and timeouts are retried; a 401 gets one fresh token. Redirects (302/307 on POST,
as regional tenants see) are followed by hand so that the body and ``Authorization`` are re-sent,
and only to hosts the cloud allows: the bearer token never leaves the tenant's service hosts.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from mia_bridge.bridge.rest_auth import TokenProvider
from mia_bridge.errors import BridgeTimeoutError, BridgeTLSError, BridgeTransportError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 307, 308})
_RETRY_SECONDS_IN_TEXT = re.compile(r"retry\s+(?:after|in)\s+(\d+(?:\.\d+)?)\s*(?:seconds?|s)\b", re.IGNORECASE)


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 2.0
    max_wait_s: float = 300.0
    sleep: Callable[[float], None] = time.sleep


def httpx_verify(verify: str | bool) -> ssl.SSLContext | bool:
    """httpx's ``verify``: a CA bundle path becomes an SSL context (validation is never turned off here)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (decimal seconds or an HTTP date), else from the message text."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    match = _RETRY_SECONDS_IN_TEXT.search(response.text[:2000]) if response.content else None
    return float(match.group(1)) if match else None


def parse_json(response: httpx.Response) -> Any | None:
    """The body as JSON, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def body_excerpt(response: httpx.Response, limit: int = 160) -> str:
    """A short, single-line, tag-stripped excerpt of a non-JSON body for an error message."""
    text = response.content[:4000].decode("utf-8", "replace")
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:limit] + ("…" if len(text) > limit else "")


def describe_response(response: httpx.Response) -> str:
    ctype = response.headers.get("Content-Type", "no content type")
    return f"HTTP {response.status_code} ({ctype})"


def require_https(url: str, what: str) -> None:
    """Refuse to send a bearer token anywhere but https: a redirect or an ``@odata.nextLink`` that
    downgrades to http would put the token on the wire in clear (issue 12)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme != "https":
        raise BridgeTransportError(
            f"{what}: refusing to send the access token to {_host(url)} over {scheme or 'no scheme'}: "
            "only https is followed",
            hint="a redirect or next-page link pointed to plain http; a proxy or the service may be rewriting "
            "responses",
        )


class AuthorizedSender:
    """Sends one logical request with a bearer token, retrying and following allowed redirects."""

    def __init__(
        self,
        http: httpx.Client,
        tokens: TokenProvider,
        policy: RetryPolicy,
        *,
        allow_redirect: Callable[[str], bool],
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.policy = policy
        self.allow_redirect = allow_redirect
        self.retries = 0  # total retries taken, for the manifest and tests
        self.redirected_to: str | None = None  # the last redirect target (the caller may make it sticky)

    def send(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str],
        content: bytes | None = None,
        what: str,
        is_retryable: Callable[[httpx.Response], bool] | None = None,
    ) -> httpx.Response:
        """The final response (any status); raises only for transport failures after retries."""
        attempt = 0
        refreshed = False
        redirects = 0
        while True:
            require_https(url, what)  # every hop: the first URL, each redirect, each next-page link
            token = self.tokens.token(scope)
            sent = dict(headers, Authorization=f"Bearer {token.reveal()}")
            try:
                response = self.http.request(method, url, headers=sent, content=content)
            except httpx.TimeoutException as exc:
                failure: BridgeTransportError = BridgeTimeoutError(f"{what}: no answer from {_host(url)} in time")
                cause: Exception = exc
            except httpx.ConnectError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in type(exc.__cause__).__name__:
                    raise BridgeTLSError(
                        f"{what}: the certificate of {_host(url)} could not be verified",
                        hint="pass the CA bundle that signs it (--ca-bundle), or check for a TLS-inspecting proxy",
                    ) from None
                failure, cause = BridgeTransportError(f"{what}: cannot connect to {_host(url)}"), exc
            except httpx.TransportError as exc:
                failure, cause = (
                    BridgeTransportError(f"{what}: connection to {_host(url)} failed ({type(exc).__name__})"),
                    exc,
                )
            else:
                status = response.status_code
                if status in REDIRECT_STATUSES and "Location" in response.headers:
                    redirects += 1
                    target = urljoin(url, response.headers["Location"])
                    if redirects > 5:
                        raise BridgeTransportError(f"{what}: too many redirects (last to {_host(target)})")
                    require_https(target, what)
                    if not self.allow_redirect(target):
                        raise BridgeTransportError(
                            f"{what}: refusing to follow a redirect to {_host(target)}: not a host of this cloud, "
                            "so the token is not sent there",
                            hint="check --cloud; a TLS-inspecting proxy or captive portal may be rewriting responses",
                        )
                    log.info("%s: redirected to %s", what, _host(target))
                    url = target
                    self.redirected_to = target
                    continue
                if status == 401 and not refreshed:
                    refreshed = True
                    self.tokens.invalidate()
                    continue
                retryable = status in RETRY_STATUSES or (is_retryable is not None and is_retryable(response))
                if not retryable or attempt >= self.policy.max_retries:
                    return response
                wait = retry_after_seconds(response)
                if wait is None:
                    wait = self.policy.backoff_s * (2**attempt)
                self._pause(what, f"HTTP {status}", min(wait, self.policy.max_wait_s))
                attempt += 1
                continue
            if attempt >= self.policy.max_retries:
                raise failure from cause
            self._pause(what, type(cause).__name__, self.policy.backoff_s * (2**attempt))
            attempt += 1

    def _pause(self, what: str, reason: str, seconds: float) -> None:
        self.retries += 1
        log.info("%s: %s, retrying in %.2f s", what, reason, seconds)
        self.policy.sleep(seconds)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url
