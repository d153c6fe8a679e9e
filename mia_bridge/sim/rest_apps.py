"""App registrations of the simulated tenant: ids, uploaded certificates, granted permissions per API.

The token service (``rest_sts``) checks client assertions against ``SimApp.certificates`` and puts
``SimApp.roles[api]`` in the access token; ``RESOURCES`` maps every cloud's resource URI to its API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from mia_bridge.bridge.clouds import CLOUDS

EXO_RESOURCE = "https://outlook.office365.com"  # worldwide; the token service accepts every cloud's
GRAPH_RESOURCE = "https://graph.microsoft.com"
RESOURCES: dict[str, str] = {
    **{c.exo_scope.removesuffix("/.default"): "exo" for c in CLOUDS.values()},
    **{c.graph_scope.removesuffix("/.default"): "graph" for c in CLOUDS.values()},
}
EXO_ROLE = "Exchange.ManageAsApp"
GRAPH_ROLES = ("Organization.Read.All", "Directory.Read.All", "Application.Read.All")
# GET /domains/{id}/federationConfiguration (Graph v1.0 "List internalDomainFederations"): application
# permission Domain.Read.All, or Domain.ReadWrite.All; Directory.Read.All is not listed, so not enough.
DOMAIN_FEDERATION_ROLES = ("Domain.Read.All", "Domain.ReadWrite.All")
AUDIT_QUERY_ROLE = "AuditLogsQuery.Read.All"  # Graph audit log query API (rest_audit_routes)


@dataclass
class SimApp:
    """An app registration: its id, uploaded certificates and application permissions per API (exo, graph)."""

    client_id: str
    certificates: list[x509.Certificate]
    roles: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"exo": (EXO_ROLE,), "graph": (*GRAPH_ROLES, "Domain.Read.All", AUDIT_QUERY_ROLE)}
    )


@dataclass(frozen=True)
class AppCertificateFiles:
    """A generated app certificate: PEM (key then certificate), PFX (password protected), thumbprint."""

    pem_path: Path
    pfx_path: Path
    thumbprint: str  # SHA-1, upper-case hex, as the Entra portal shows it
    certificate: x509.Certificate


def make_app_certificate(
    directory: Path, *, pfx_password: str, name: str = "mia-bridge sim app"
) -> AppCertificateFiles:
    """A self-signed RSA certificate as an app registration would have; key files are mode 0600."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem_path = directory / "app.pem"
    pfx_path = directory / "app.pfx"
    for path in (pem_path, pfx_path):
        path.touch(mode=0o600)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    pfx_path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"mia-sim-app", key, cert, None, serialization.BestAvailableEncryption(pfx_password.encode())
        )
    )
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    return AppCertificateFiles(pem_path, pfx_path, thumbprint, cert)
