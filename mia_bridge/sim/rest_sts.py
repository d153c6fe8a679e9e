"""The simulated token service: OpenID configuration and the client-credentials grant MSAL uses.

Client assertions are verified against the app's registered certificates (RS256 with ``x5t`` or
PS256 with ``x5t#S256``), audience, issuer/subject and lifetime; errors carry real AADSTS codes.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes

from mia_bridge.sim import rest_jwt
from mia_bridge.sim.rest_apps import RESOURCES, SimApp
from mia_bridge.sim.rest_handler import RestHandlerBase


class StsRoutes(RestHandlerBase):
    """``GET /{tenant}/v2.0/.well-known/openid-configuration`` and ``POST /{tid}/oauth2/v2.0/token``."""

    def _known_tenant(self, name: str) -> bool:
        return name.lower() in (self.sim.tenant_id, self.sim.organization.lower())

    def _openid(self, tenant: str) -> None:
        if not self._known_tenant(tenant):
            self._send(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                    "error_codes": [90002],
                },
            )
            return
        origin, tid = self._origin(), self.sim.tenant_id
        self._send(
            200,
            {
                "token_endpoint": f"{origin}/{tid}/oauth2/v2.0/token",
                "authorization_endpoint": f"{origin}/{tid}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{origin}/{tid}/oauth2/v2.0/devicecode",
                "issuer": f"{origin}/{tid}/v2.0",
                "jwks_uri": f"{origin}/{tid}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "tenant_region_scope": "EU",
            },
            content_type="application/json; charset=utf-8",
        )

    def _token_error(self, status: int, error: str, code: int, text: str) -> None:
        self._send(
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text}",
                "error_codes": [code],
                "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            },
            content_type="application/json; charset=utf-8",
        )

    def _token(self, tenant: str, body: bytes) -> None:
        sim = self.sim
        fault = sim.faults.take("token")
        if fault is not None:
            return self._fault(fault)
        if tenant.lower() != sim.tenant_id:
            return self._token_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return self._delegated_grant(form)  # device code, authorization code, refresh token (rest_delegated)
        client_id = form.get("client_id", "")
        app = sim.apps.get(client_id.lower())
        if app is None:
            return self._token_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{sim.organization}'.",
            )
        assertion = form.get("client_assertion")
        if (
            not assertion
            or form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return self._token_error(
                401, "invalid_client", 7000218, "The request body must contain 'client_assertion'."
            )
        problem = self._check_assertion(app, assertion)
        if problem:
            return self._token_error(401, "invalid_client", problem[0], problem[1])
        scope = form.get("scope", "")
        resource = scope.split()[0].removesuffix("/.default") if scope else ""
        if resource not in RESOURCES:
            return self._token_error(
                400, "invalid_scope", 500011, f"The resource principal named {resource} was not found."
            )
        token, lifetime = sim.issue_token(app, resource)
        self._send(
            200,
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
            content_type="application/json; charset=utf-8",
        )

    def _check_assertion(self, app: SimApp, assertion: str) -> tuple[int, str] | None:
        try:
            header, claims, _, _ = rest_jwt.split(assertion)
        except rest_jwt.JwtError:
            return 50027, "JWT token is invalid or malformed."
        cert = None
        for candidate in app.certificates:
            sha1 = rest_jwt.b64url(candidate.fingerprint(hashes.SHA1()))
            sha256 = rest_jwt.b64url(candidate.fingerprint(hashes.SHA256()))
            # MSAL keeps the base64 padding; RFC 7515 drops it. Accept both.
            if str(header.get("x5t", "")).rstrip("=") == sha1 or str(header.get("x5t#S256", "")).rstrip("=") == sha256:
                cert = candidate
        if cert is None:
            return 700027, (
                "The certificate with identifier used to sign the client assertion is not registered on application. "
                f"[Reason - The key was not found., Thumbprint of key used by client: "
                f"'{header.get('x5t') or header.get('x5t#S256')}']"
            )
        try:
            rest_jwt.verify(assertion, cert.public_key())
        except rest_jwt.JwtError:
            return 700027, "Client assertion failed signature validation."
        now = self.sim.clock()
        expected_aud = f"{self._origin()}/{self.sim.tenant_id}/oauth2/v2.0/token"
        if claims.get("aud") != expected_aud:
            return (
                700212,
                f"No matching federated identity record found for presented assertion audience '{claims.get('aud')}'.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return 700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        if float(claims.get("exp", 0)) < now - 300:
            return 700024, "Client assertion is not within its valid time range."
        return None

    # --- InvokeCommand --------------------------------------------------------------------------
