"""Minimal JWS (compact JWT) signing and verification for the simulated token service.

Only what the loopback STS needs: RS256 and PS256 (what MSAL signs client assertions with, keyed by
``x5t`` or ``x5t#S256``) and RS256 for the access tokens it issues. Not a general JWT library.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


class JwtError(ValueError):
    """The token is malformed or its signature does not verify."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature); raises JwtError when malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError(f"undecodable token: {type(exc).__name__}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("header and claims must be JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def sign_rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey, *, kid: str = "sim") -> str:
    header = {"typ": "JWT", "alg": "RS256", "kid": kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def verify(token: str, public_key: PublicKeyTypes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify an RS256 or PS256 signature; returns (header, claims)."""
    header, claims, signing_input, signature = split(token)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise JwtError("only RSA keys are supported")
    alg = header.get("alg")
    pad: padding.AsymmetricPadding
    if alg == "RS256":
        pad = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        raise JwtError(f"unsupported alg {alg!r}")
    try:
        public_key.verify(signature, signing_input, pad, hashes.SHA256())
    except InvalidSignature:
        raise JwtError("signature does not verify") from None
    return header, claims
