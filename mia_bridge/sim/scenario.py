"""Scenario generator: a deterministic (by seed) simulated tenant with users, apps, domains, benign
activity at any scale and, for "compromised", an attacker story whose ground truth is kept.

The attack (all in ``ScenarioTruth``): a forged SAML sign-in of a federated admin, federation
tampering, PowerShell sign-ins (EXO PowerShell, Azure AD PowerShell, WinRM), consent to an app,
a credential added to it, Graph reads of the victim's mail (binds, ClientAppId = the app) from a
foreign IP until the mailbox is throttled, the app reading OneDrive files, an Outlook desktop sync
from another IP, an inbox rule forwarding and deleting mail, mailbox forwarding and FullAccess.
Every CISA Sparrow search (peer-tools §1.4) finds at least one attacker record and benign
look-alikes (same operation, or same free text, but benign context) exist for them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from mia_bridge.sim.scenario_directory import build_directory
from mia_bridge.sim.scenario_hostile import HOSTILE_NAMES, AttackerNames
from mia_bridge.sim.scenario_noise import DISTRIBUTIONS, add_noise
from mia_bridge.sim.scenario_records import (
    APP_AAD_POWERSHELL,
    APP_EXO_POWERSHELL,
    APP_EXO_POWERSHELL_V3,
    APP_GRAPH,
    CLIENT_OUTLOOK,
    CLIENT_OWA,
    CLIENT_POWERSHELL,
    CLIENT_REST,
    RecordFactory,
    User,
    clean,
)
from mia_bridge.sim.tenant import Tenant, TenantConfig, make_guid
from mia_bridge.sim.tenant_store import epoch_seconds
from mia_bridge.sim.truth import AttackerAction, ScenarioTruth

SCENARIOS = ("compromised", "benign", "hostile")  # hostile: compromised, with the attacker's names as attacks
DEFAULT_START = datetime(2026, 10, 1, tzinfo=UTC)

_FIRST = ("Megan", "Alex", "Adele", "Diego", "Grady", "Isaiah", "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Miriam",
          "Nestor", "Patti", "Pradeep", "Christie", "Henrietta", "Irvin", "Allan", "Debra")
_LAST = ("Bowen", "Wilber", "Vance", "Siciliani", "Archie", "Langer", "Lauridsen", "Sherman", "Gu", "Holloway",
         "Robbins", "Graham", "Wilke", "Fernandez", "Gupta", "Cline", "Mueller", "Sanchez", "Deyoung", "Berg")

GRAPH_READ_IP = "192.0.2.66"  # attacker infrastructure (documentation range: never routable)
DESKTOP_SYNC_IP = "192.0.2.141"
FORWARD_TO = "m.bowen.archive@proton.example"
ATTACKER_APP_NAME = AttackerNames.app
BENIGN_ARCHIVER_NAME = "Contoso Mail Archiver"
BENIGN_HR_APP_NAME = "HR Portal"


class World:
    """Users, domains, apps and IPs of one tenant."""

    def __init__(self, config: TenantConfig, tenant_id: str, rng: random.Random, user_count: int,
                 names: AttackerNames | None = None) -> None:
        self.config = config
        self.names = names or AttackerNames()
        self.rng = rng
        label = config.organization.split(".")[0].lower()
        self.label = label
        self.domain = f"{label}.com"
        self.federated_domain = f"{label}-corp.com"
        self.partner_domain = f"{label}-partners.com"  # federated, IdP enforces MFA: not flagged
        self.factory = RecordFactory(config.organization, tenant_id, rng)
        self.victim = self._user("Megan", "Bowen", self.domain, office=10)
        self.compromised_admin = self._user("IT", "Admin", self.federated_domain, office=11, upn_local="it.admin")
        self.benign_admin = self._user("Exchange", "Admin", self.domain, office=12, upn_local="exo.admin")
        self.shared_mailbox = self._user("Finance", "Shared", self.domain, office=12, upn_local="finance-shared")
        self.users: list[User] = [self.victim, self.compromised_admin, self.benign_admin]
        for i in range(max(0, user_count - len(self.users))):
            first, last = _FIRST[(i + 1) % len(_FIRST)], _LAST[(i * 7 + 3) % len(_LAST)]
            domain = self.federated_domain if i % 6 == 5 else self.domain
            local = f"{first}.{last}".lower() + (str(i // len(_FIRST)) if i >= len(_FIRST) else "")
            self.users.append(self._user(first, last, domain, office=10 + i % 10, upn_local=local))
        self.victim.messages["\\Finance"] = [self.factory.message_id() for _ in range(40)]
        self.victim.folder_ids["\\Finance"] = self.factory.store_id()
        if self.names.hidden_folder:  # the attacker's own folder in the victim's mailbox
            self.victim.messages[self.names.hidden_folder] = [self.factory.message_id() for _ in range(12)]
            self.victim.folder_ids[self.names.hidden_folder] = self.factory.store_id()
        self.attacker_app_id = make_guid(rng)
        self.attacker_sp_id = make_guid(rng)
        self.archiver_app_id = make_guid(rng)
        self.archiver_sp_id = make_guid(rng)
        self.hr_app_id = make_guid(rng)
        self.hr_sp_id = make_guid(rng)
        self.mia_sp_id = make_guid(rng)

    def _user(self, first: str, last: str, domain: str, *, office: int, upn_local: str | None = None) -> User:
        rng = self.rng
        f = self.factory
        local = upn_local or f"{first}.{last}".lower()
        user = User(
            upn=f"{local}@{domain}",
            display_name=f"{first} {last}",
            object_id=make_guid(rng),
            mailbox_guid=make_guid(rng),
            sid=clean(f"S-1-5-21-{rng.randint(10**9, 4 * 10**9)}-{rng.randint(10**9, 4 * 10**9)}-"
                      f"{rng.randint(10**9, 4 * 10**9)}-{rng.randint(10**6, 9 * 10**7)}"),
            puid=clean(f"1003{rng.getrandbits(48):012X}"),
            home_ip=f"203.0.113.{rng.randint(1, 254)}",
            office_ip=f"198.51.100.{office}",
        )
        for path, count in (("\\Inbox", 60), ("\\Sent Items", 20), ("\\Archive", 20)):
            user.messages[path] = [f.message_id() for _ in range(count)]
            user.folder_ids[path] = f.store_id()
        return user


class _Story:
    """Collects records and their meaning (attacker action or benign look-alike)."""

    def __init__(self, world: World, truth: ScenarioTruth) -> None:
        self.world = world
        self.truth = truth
        self.records: list[dict[str, Any]] = []

    def attack(self, record: dict[str, Any], what: str, sparrow: str = "") -> dict[str, Any]:
        self.records.append(record)
        self.truth.actions.append(AttackerAction(
            operation=record["Operation"], record_id=record["Id"],
            time=datetime.fromisoformat(record["CreationTime"]).replace(tzinfo=UTC), what=what,
            user=record.get("UserId", ""),
            ip=str(record.get("ClientIPAddress") or record.get("ActorIpAddress") or record.get("ClientIP") or ""),
            sparrow_search=sparrow,
        ))
        return record

    def benign(self, record: dict[str, Any], lookalike: bool = True) -> dict[str, Any]:
        self.records.append(record)
        if lookalike:
            self.truth.benign_lookalike_ids.append(record["Id"])
        return record


def build_tenant(
    config: TenantConfig | None = None,
    *,
    scenario: str = "compromised",
    records: int = 5000,
    distribution: str = "bursty",
    start: datetime | None = None,
    days: int = 30,
    hostile: bool = False,
) -> Tenant:
    """A tenant holding about ``records`` audit records over ``days`` from ``start`` (deterministic by seed).

    ``hostile`` (or ``scenario="hostile"``): the compromised story whose attacker names its app, inbox rule,
    folder, user agents and mail subjects with spreadsheet formulas and terminal escapes (``scenario_hostile``).
    """
    if scenario == "hostile":
        scenario, hostile = "compromised", True
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    if days < 2:
        raise ValueError("a scenario needs at least 2 days")
    config = config or TenantConfig()
    tenant = Tenant(config)
    begin = (start or DEFAULT_START).astimezone(UTC)
    end = begin + timedelta(days=days)
    rng = random.Random(config.seed)
    world = World(config, tenant.tenant_id, rng, user_count=max(12, min(400, records // 2500)),
                  names=HOSTILE_NAMES if hostile else None)
    truth = ScenarioTruth(
        scenario=scenario, seed=config.seed, organization=config.organization,
        benign_users=[u.upn for u in world.users if u is not world.compromised_admin and u is not world.victim],
        federated_domains=[world.federated_domain],
    )
    story = _Story(world, truth)
    attack_at = begin + timedelta(days=int(days * 0.6), hours=2, minutes=13)
    _lookalikes(story, begin + timedelta(days=max(1, int(days * 0.3)), hours=9))
    if scenario == "compromised":
        _attack(story, attack_at)
    else:
        truth.benign_users = [u.upn for u in world.users]
    tenant.add_audit_records(story.records)
    no_binds = []
    if truth.throttled_at is not None:
        thr = epoch_seconds(truth.throttled_at)
        no_binds.append((truth.throttled_mailbox, thr, thr + 86_400))
    add_noise(tenant.store, world.factory, world.users, records - len(story.records), distribution, begin, end,
              config.seed, no_binds)
    tenant.store.compact()
    tenant.directory = build_directory(world, scenario, tenant)
    truth.record_count = len(tenant)
    tenant.truth = truth
    if world.names.subjects:
        tenant.__dict__["hostile_subjects"] = world.names.subjects  # sim/mailflow.py gives them to read mail
    return tenant


def _lookalikes(story: _Story, at: datetime) -> None:
    """Benign records that share an operation or a search term with the attack."""
    w, f = story.world, story.world.factory
    adm, user = w.benign_admin, w.users[4]
    office = adm.office_ip
    m = timedelta(minutes=1)
    story.benign(f.user_logged_in(at, adm, office, app_id=APP_EXO_POWERSHELL, user_agent="Microsoft WinRM Client"))
    story.benign(f.mailbox_login(at + m, adm, office, client_info=CLIENT_POWERSHELL, app_id=APP_EXO_POWERSHELL_V3))
    story.benign(f.directory_change(at + 2 * m, "Consent to application.", adm, office,
                                    target_name=BENIGN_ARCHIVER_NAME, target_id=w.archiver_sp_id,
                                    modified=[("ConsentContext.IsAdminConsent", "", "True"),
                                              ("ConsentAction.Permissions", "", "Scope: Mail.Read")]))
    story.benign(f.directory_change(at + 3 * m, "Update application.", adm, office, target_name=BENIGN_HR_APP_NAME,
                                    target_id=w.hr_app_id, modified=[("AppAddress", "[]", '["https://hr.example"]')]))
    story.benign(f.directory_change(at + 4 * m, "Update service principal.", adm, office,
                                    target_name=BENIGN_HR_APP_NAME, target_id=w.hr_sp_id,
                                    modified=[("DisplayName", BENIGN_HR_APP_NAME, BENIGN_HR_APP_NAME)]))
    # A managed-domain sign-in failure whose text carries 16457: Sparrow's domain filter must drop it.
    story.benign(f.user_logged_in(at + 5 * m, user, user.office_ip, operation="UserLoginFailed",
                                  auth_method="16457", logon_error="InvalidReplyTo"))
    story.benign(f.file_accessed(at + 6 * m, user, user.office_ip, file_name="PO-16457 WindowsPowershell notes.docx"))
    # The archiver reads benign mail through Graph: same AppId as the attacker's reads, another ClientAppId.
    for i, reader in enumerate(w.users[5:8]):
        story.benign(f.bind(at + (10 + i) * m, reader, {"\\Inbox": reader.messages["\\Inbox"][:3]},
                            "2603:10b6:303:5b::21", client_info=CLIENT_REST, app_id=APP_GRAPH,
                            client_app_id=w.archiver_app_id))
    story.benign(f.exchange_admin(at + 20 * m, "New-InboxRule", user, user.office_ip,
                                  object_id=f.exchange_object_id(user, "Newsletters"),
                                  parameters=[("AlwaysDeleteOutlookRulesBlob", "False"), ("Force", "False"),
                                              ("Name", "Newsletters"),
                                              ("From", "news@contoso-news.example"), ("MoveToFolder", "Newsletters"),
                                              ("StopProcessingRules", "True")],
                                  app_id="00000002-0000-0ff1-ce00-000000000000"))
    story.benign(f.exchange_admin(at + 21 * m, "Set-Mailbox", adm, office,
                                  object_id=f.exchange_object_id(user),
                                  parameters=[("Identity", user.upn), ("RetainDeletedItemsFor", "30.00:00:00")]))
    story.benign(f.exchange_admin(at + 22 * m, "Add-MailboxPermission", adm, office,
                                  object_id=f.exchange_object_id(w.shared_mailbox),
                                  parameters=[("Identity", w.shared_mailbox.upn), ("User", user.upn),
                                              ("AccessRights", "FullAccess"), ("InheritanceType", "All")]))
    # The victim's own activity from her own IPs (noise adds much more).
    v = w.victim
    story.benign(f.sync_item(at + 30 * m, v, "\\Inbox", v.office_ip), lookalike=False)
    story.benign(f.bind(at + 31 * m, v, {"\\Finance": v.messages["\\Finance"][:2]}, v.office_ip,
                        client_info=CLIENT_OWA), lookalike=False)


def _attack(story: _Story, t0: datetime) -> None:
    w, f, truth = story.world, story.world.factory, story.truth
    admin, victim = w.compromised_admin, w.victim
    ip, sync_ip = GRAPH_READ_IP, DESKTOP_SYNC_IP
    rng = w.rng
    m = timedelta(minutes=1)
    truth.victims = [victim.upn]
    truth.compromised_admin = admin.upn
    truth.attacker_ips = [ip, sync_ip]
    truth.attacker_app_ids = [w.attacker_app_id]
    truth.attacker_app_names = [w.names.app]
    truth.attacker_forwarding_address = FORWARD_TO
    ps_ua = "Microsoft WinRM Client"
    story.attack(f.user_logged_in(t0, admin, ip, auth_method="16457", request_type="Saml20:Token"),
                 "forged SAML token sign-in of the federated admin (UserAuthenticationMethod 16457)", "6")
    story.attack(f.directory_change(t0 + 2 * m, "Set federation settings on domain.", admin, ip,
                                    target_name=w.federated_domain, target_id=w.federated_domain,
                                    modified=[("IssuerUri", "http://sts.old/adfs/services/trust",
                                               "http://sts.attacker.example/adfs/services/trust")]),
                 "federation settings changed on the federated domain", "1")
    story.attack(f.directory_change(t0 + 3 * m, "Set domain authentication.", admin, ip,
                                    target_name=w.federated_domain, target_id=w.federated_domain,
                                    modified=[("LiveType", "Managed", "Federated")]),
                 "domain authentication set to federated", "1")
    story.attack(f.user_logged_in(t0 + 5 * m, admin, ip, app_id=APP_EXO_POWERSHELL, user_agent=ps_ua),
                 "sign-in with the Exchange Online PowerShell client (a0c73c16) over WinRM", "8a,8c")
    story.attack(f.user_logged_in(t0 + 6 * m, admin, ip, app_id=APP_EXO_POWERSHELL_V3, user_agent=ps_ua),
                 "sign-in with the Exchange Online PowerShell V3 app (fb78d390)", "8c")
    story.attack(f.user_logged_in(t0 + 7 * m, admin, ip, app_id=APP_AAD_POWERSHELL,
                                  user_agent="Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1"),
                 "sign-in with Azure AD PowerShell (1b730954)", "8b")
    story.attack(f.mailbox_login(t0 + 8 * m, admin, ip, client_info=CLIENT_POWERSHELL, app_id=APP_EXO_POWERSHELL_V3),
                 "mailbox login through Exchange PowerShell", "7")
    app, sp = w.attacker_app_id, w.attacker_sp_id
    targets = [{"ID": app, "Type": 2}]
    story.attack(f.directory_change(t0 + 10 * m, "Consent to application.", admin, ip, target_name=w.names.app,
                                    target_id=sp, extra_targets=targets,
                                    modified=[("ConsentContext.IsAdminConsent", "", "True"),
                                              ("ConsentAction.Permissions", "",
                                               "Scope: Mail.Read Files.Read.All offline_access")]),
                 f"admin consent to the attacker app {w.names.app}", "5")
    story.attack(f.directory_change(t0 + 10 * m, "Add OAuth2PermissionGrant.", admin, ip, target_name=w.names.app,
                                    target_id=sp, extra_targets=targets,
                                    modified=[("DelegatedPermissionGrant.Scope", "", "Mail.Read Files.Read.All")]),
                 "delegated permission grant to the attacker app", "5")
    # Operation spelled as Sparrow searches it ("Add app role assignment") [U: exact Entra name].
    story.attack(f.directory_change(t0 + 11 * m, "Add app role assignment.", admin, ip, target_name=w.names.app,
                                    target_id=sp, extra_targets=targets,
                                    modified=[("AppRole.Value", "", "Mail.Read"),
                                              ("AppRole.Id", "", "810c84a8-4a9e-49e6-bf7d-12d183f40d01")]),
                 "Graph application permission Mail.Read granted to the attacker app", "4")
    key_id = make_guid(rng)
    story.attack(f.directory_change(t0 + 12 * m, "Update application – Certificates and secrets management ", admin,
                                    ip, target_name=w.names.app, target_id=app,
                                    modified=[("KeyDescription", "[]",
                                               f'["[KeyIdentifier={key_id},KeyType=Password,KeyUsage=Verify,'
                                               'DisplayName=sync]"]')]),
                 "client secret added to the attacker app registration", "2")
    story.attack(f.directory_change(t0 + 12 * m, "Update application.", admin, ip, target_name=w.names.app,
                                    target_id=app, modified=[("Included Updated Properties", "", "KeyDescription")]),
                 "attacker app registration updated", "2")
    story.attack(f.directory_change(t0 + 13 * m, "Add service principal credentials.", admin, ip,
                                    target_name=w.names.app, target_id=sp,
                                    modified=[("KeyDescription", "[]",
                                               f'["[KeyIdentifier={make_guid(rng)},KeyType=AsymmetricX509Cert,'
                                               'KeyUsage=Verify,DisplayName=CN=sync]"]')]),
                 "certificate credential added to the attacker service principal", "3")
    story.attack(f.directory_change(t0 + 13 * m, "Update service principal.", admin, ip, target_name=w.names.app,
                                    target_id=sp, modified=[("Included Updated Properties", "", "KeyCredentials")]),
                 "attacker service principal updated", "3")
    # Graph reads of the victim's mail, 2-minute aggregated binds, until the mailbox is throttled.
    reads_at = t0 + timedelta(hours=1)
    pools = {p: victim.messages[p] for p in ("\\Inbox", "\\Finance", "\\Sent Items", w.names.hidden_folder) if p}
    binds = 14
    for i in range(binds):
        when = reads_at + i * 4 * m
        folders: dict[str, list[str]] = {}
        for path in rng.sample(sorted(pools), k=1 + (i % 2)):
            folders[path] = rng.sample(pools[path], k=3 + rng.randint(0, 5))
        throttled = i == binds - 1
        rec = story.attack(
            f.bind(when, victim, folders, ip, client_info=CLIENT_REST, app_id=APP_GRAPH, client_app_id=app,
                   throttled=throttled),
            "victim mail read through Microsoft Graph by the attacker app" + (" (mailbox throttled)" if throttled
                                                                             else ""), "9")
        for ids in folders.values():
            truth.read_message_ids.update(ids)
        if throttled:
            truth.throttled_mailbox = victim.upn
            truth.throttled_at = datetime.fromisoformat(rec["CreationTime"]).replace(tzinfo=UTC)
    for i, name in enumerate(("Payroll 2026.xlsx", "Board minutes.docx")):
        story.attack(f.file_accessed(reads_at + (5 + i) * m, victim, ip, file_name=name, app_id=app,
                                     user_agent=w.names.file_user_agent),
                     "victim OneDrive file read by the attacker app", "10")
    # Desktop Outlook sync from another IP: sync is not throttled, so it is logged.
    sync_at = t0 + timedelta(hours=4)
    session = make_guid(rng)
    story.attack(f.mailbox_login(sync_at, victim, sync_ip, client_info=CLIENT_OUTLOOK, session_id=session),
                 "victim mailbox opened by Outlook desktop from the attacker's second IP")
    story.attack(f.sync_item(sync_at + m, victim, "\\Inbox", sync_ip, session_id=session),
                 "Inbox synced to the attacker's Outlook (sync, RecordType 2 shape)")
    synced = ["\\Sent Items", "\\Finance", *([w.names.hidden_folder] if w.names.hidden_folder else [])]
    story.attack(f.sync_folders(sync_at + 2 * m, victim, synced, sync_ip, session_id=session),
                 "Sent Items and Finance synced to the attacker's Outlook (sync, RecordType 50 shape)")
    truth.synced_folders = ["\\Inbox", *synced]
    # Persistence through Exchange PowerShell as the compromised admin.
    rule_at = t0 + timedelta(hours=5)
    story.attack(f.exchange_admin(rule_at, "New-InboxRule", admin, ip,
                                  object_id=f.exchange_object_id(victim, w.names.rule),
                                  parameters=[("AlwaysDeleteOutlookRulesBlob", "False"), ("Force", "False"),
                                              ("Mailbox", victim.upn), ("Name", w.names.rule),
                                              ("SubjectOrBodyContainsWords", "invoice;payment;wire"),
                                              ("ForwardTo", FORWARD_TO), ("DeleteMessage", "True"),
                                              ("StopProcessingRules", "True")]),
                 "inbox rule on the victim forwarding and deleting payment mail")
    story.attack(f.exchange_admin(rule_at + m, "Set-Mailbox", admin, ip,
                                  object_id=f.exchange_object_id(victim),
                                  parameters=[("Identity", victim.upn), ("ForwardingSmtpAddress", f"smtp:{FORWARD_TO}"),
                                              ("DeliverToMailboxAndForward", "True")]),
                 "mailbox forwarding to an external address")
    story.attack(f.exchange_admin(rule_at + 2 * m, "Add-MailboxPermission", admin, ip,
                                  object_id=f.exchange_object_id(victim),
                                  parameters=[("Identity", victim.upn), ("User", admin.upn),
                                              ("AccessRights", "FullAccess"), ("InheritanceType", "All")]),
                 "FullAccess on the victim mailbox granted to the compromised admin")
