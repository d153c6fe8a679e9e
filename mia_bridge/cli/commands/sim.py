"""``mia sim serve``: the simulated Exchange Online tenant behind a real WinRM/PSRP listener.

Any WinRM client (pypsrp used directly, not only mia) can open a runspace pool at the printed URL
and run the simulated cmdlets. The password is read from MIA_SIM_PASSWORD, never from argv.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import typer

from mia_bridge.bridge.backend import Secret
from mia_bridge.cli.console import err
from mia_bridge.errors import UsageError
from mia_bridge.sim.backend import SIM_PASSWORD_ENV, SimOptions, build_tenant

sim_app = typer.Typer(name="sim", help="The simulated Exchange Online tenant.", no_args_is_help=True)


@sim_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on (127.0.0.1 or ::1)."),
    port: int = typer.Option(0, "--port", help="Port (0 = a free one)."),
    transport: str = typer.Option("http", "--transport", help="http or https (https makes a throwaway CA)."),
    auth: str = typer.Option("basic", "--auth", help="basic, ntlm, negotiate or kerberos (with message encryption; "
                             "kerberos needs KRB5_KTNAME, a keytab with the HOST/<name> keys)."),
    username: str = typer.Option("mia", "--username", help="Account accepted (password: MIA_SIM_PASSWORD)."),
    seed: int = typer.Option(0, "--seed", help="Scenario seed."),
    records: int = typer.Option(5000, "--records", help="Audit records in the tenant."),
    no_premium: bool = typer.Option(False, "--no-premium", help="No Audit Premium licence."),
    ingestion_off: bool = typer.Option(False, "--ingestion-off", help="Unified audit log ingestion off."),
    mailbox_audit_retired: bool = typer.Option(False, "--mailbox-audit-retired",
                                               help="Search-MailboxAuditLog is retired (CommandNotFound)."),
    organization: str | None = typer.Option(None, "--organization", help="Tenant Connect-ExchangeOnline accepts."),
    app_id: str | None = typer.Option(None, "--app-id", help="AppId Connect-ExchangeOnline accepts."),
    certificate_thumbprint: str | None = typer.Option(None, "--certificate-thumbprint",
                                                      help="Certificate thumbprint Connect-ExchangeOnline accepts."),
    dump_truth: Path | None = typer.Option(None, "--dump-truth", help="Write every audit record (AuditData JSON "
                                           "lines) to FILE, then serve."),
    ca_out: Path | None = typer.Option(None, "--ca-out", help="With https: copy the CA certificate (PEM) here."),
    quirk: list[str] = typer.Option(None, "--quirk", help="Service misbehaviour to show (repeat): plain-cap, "
                                    "result-count-echo, unsorted, session-crosstalk, session-expiry, dehydrated; "
                                    "no-NAME drops one from the defaults; none = the documented behaviour only. "
                                    "Default: all but dehydrated (which follows --ingestion-off)."),
    api: str = typer.Option("psrp", "--api", help="psrp (WinRM) or rest (admin API, Graph and token service "
                            "over HTTPS, for --backend rest --server <url>)."),
    jea: bool = typer.Option(False, "--jea", help="Also serve the JEA endpoint MiaBridge: the shipped "
                             "ps_scripts/MiaBridge.pssc and MiaBridgeAudit.psrc, enforced (--configuration-name "
                             "MiaBridge)."),
) -> None:
    """Serve the simulated tenant over WinRM until SIGINT/SIGTERM; prints `READY <url>` when listening."""
    from mia_bridge.sim import quirks
    from mia_bridge.sim.server import SimServer

    options = SimOptions(records=records, seed=seed, premium=not no_premium, ingestion=not ingestion_off,
                         mailbox_audit_retired=mailbox_audit_retired, quirks=tuple(quirk or ()))
    try:
        quirks.parse(options.quirks, ingestion_enabled=options.ingestion)  # before any other check, as always
    except ValueError as exc:
        raise UsageError(f"--quirk: {exc}") from None
    if transport not in ("http", "https"):
        raise UsageError("--transport must be http or https")
    if auth not in ("basic", "ntlm", "negotiate", "kerberos"):
        raise UsageError("--auth must be basic, ntlm, negotiate or kerberos")
    if auth == "kerberos" and not os.environ.get("KRB5_KTNAME"):
        raise UsageError("--auth kerberos needs the service keys: set KRB5_KTNAME to a keytab",
                         hint="kadmin: addprinc -randkey host/NAME; ktadd -k sim.keytab host/NAME")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise UsageError("the simulator listens on loopback only", hint="use --host 127.0.0.1 or ::1")
    if records < 0:
        raise UsageError("--records cannot be negative")
    if api not in ("psrp", "rest"):
        raise UsageError("--api must be psrp or rest")
    if jea and api != "psrp":
        raise UsageError("--jea is a WinRM session configuration: use it with --api psrp")
    password = os.environ.get(SIM_PASSWORD_ENV)
    if not password and api == "psrp":
        raise UsageError(f"set {SIM_PASSWORD_ENV} to the password the simulator should accept",
                         hint="passwords are never taken from the command line")
    tenant = build_tenant(options, organization=organization, app_id=app_id,
                          certificate_thumbprint=certificate_thumbprint, quirk_flag="--quirk")
    config = tenant.config
    if dump_truth is not None:
        count = tenant.dump_truth(dump_truth)
        err.print(f"wrote {count} audit records to {dump_truth}", markup=False, highlight=False, soft_wrap=True)

    if api == "rest":
        from mia_bridge.sim.rest_session import serve_rest

        serve_rest(tenant, host=host, port=port, ca_out=ca_out)
        return
    assert password is not None  # required above for psrp
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SimServer(tenant, host=host, port=port, transport=transport, auth=auth, username=username,
                       password=Secret(password), isolate_client_kerberos=False, jea=jea) as server:
            if server.ca_path is not None:
                if ca_out is not None:
                    shutil.copyfile(server.ca_path, ca_out)
                err.print(f"CA certificate: {ca_out or server.ca_path}", markup=False, highlight=False, soft_wrap=True)
            err.print(
                f"organization {config.organization}, app id {config.app_id}, certificate thumbprint "
                f"{config.certificate_thumbprint}; {auth} as {username}; quirks: "
                f"{', '.join(sorted(config.quirks or ())) or 'none'}"
                + ("; JEA endpoint: --configuration-name MiaBridge" if jea else ""),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            sys.stdout.write(f"READY {server.url}\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err.print("simulator stopped", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
