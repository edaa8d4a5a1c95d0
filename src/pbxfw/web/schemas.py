"""The REST API's shapes: one family of schemas per resource.

These describe and parse JSON; they do not validate the meaning of values.
Subnets, names, service keys, ports and settings are validated by the use
cases, the same code the CLI calls, and their errors come back as 422 with
the field named. Unknown fields are refused (``extra="forbid"``) so that a
typo is an error, not a silently ignored change.

Request bodies are strict (``strict=True``): JSON's own types only, no
conversion. ``"local": "yes"`` or ``1`` is not a boolean, ``"seconds": true``,
``"60"`` or ``60.0`` is not a whole number, ``"name": 5`` is not text; each
answers 422 with ``loc`` naming the field. Only the settings PATCH takes text
("on", "10m") on purpose, as the CLI does; the web page's forms are parsed
by the page itself (form values are text).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, WithJsonSchema

from pbxfw.domain.setting_rules import MAX_BAN_SECONDS

__all__ = [
    "ApplyRequest",
    "ApplyStatus",
    "BanCreate",
    "BanImport",
    "BanImportResult",
    "BanPublic",
    "CheckNetwork",
    "CheckPublic",
    "CustomServiceCreate",
    "IpsStatus",
    "NetworkCreate",
    "NetworkPublic",
    "NetworkUpdate",
    "PortRangePublic",
    "ServicePublic",
    "SettingsPatch",
    "SiteCreate",
    "SitePublic",
    "SourceStatusPublic",
    "Token",
]


class _Input(BaseModel):
    """A request body: unknown fields refused, values of JSON's own type only."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NetworkCreate(_Input):
    """A new network. Services not named keep the verdict their addresses had."""

    name: str = Field(description="1–64 printable characters, unique")
    subnet: str = Field(
        description="CIDR, IPv4 or IPv6; host bits are zeroed", examples=["192.168.1.0/24"]
    )
    services: dict[str, str] | None = Field(
        default=None, description='verdict per service key: "allow" or "block"'
    )
    allow: list[str] = Field(default_factory=list, description="service keys to allow")
    block: list[str] = Field(default_factory=list, description="service keys to block")
    local: bool = Field(default=False, description="a VPN or local network (PJSIP local_net)")
    never_block: bool = Field(default=False, description="intrusion prevention never bans here")
    description: str = ""


class NetworkUpdate(_Input):
    """A partial change: only the fields given change."""

    name: str | None = None
    subnet: str | None = None
    services: dict[str, str] | None = None
    allow: list[str] = Field(default_factory=list)
    block: list[str] = Field(default_factory=list)
    local: bool | None = None
    never_block: bool | None = None
    description: str | None = None


class NetworkPublic(BaseModel):
    """A network as the configuration document has it (DESIGN §5)."""

    id: int
    name: str
    subnet: str
    services: dict[str, Literal["allow", "block"]]
    local: bool
    never_block: bool
    description: str


class PortRangePublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    protocol: Literal["tcp", "udp"]
    first: int = Field(alias="from", serialization_alias="from")
    last: int = Field(alias="to", serialization_alias="to")


class ServicePublic(BaseModel):
    """A catalogue entry with its ports resolved from the settings (as ``service list --json``)."""

    key: str
    label: str
    builtin: bool
    icmp: bool
    ports: list[PortRangePublic]


class CustomServiceCreate(_Input):
    key: str = Field(
        description="lower-case letter, then letters, digits or _", examples=["provisioning"]
    )
    label: str = ""
    tcp: str = Field(default="", description="ports and ranges, e.g. 5000,6000-6010")
    udp: str = ""


#: ``PATCH /api/v1/settings`` takes any subset of the settings (and ``ips_preset``).
SettingsPatch = dict[str, Any]


class CheckNetwork(BaseModel):
    id: int | None
    name: str
    subnet: str


class CheckCountry(BaseModel):
    """The country rule that decided, and the address's country (null: unknown)."""

    code: str | None
    rule: str


class CheckPublic(BaseModel):
    """The decision for one address and service (as ``pbxfw check --json``)."""

    address: str
    service: str
    verdict: Literal["allow", "block", "banned"]
    network: CheckNetwork | None
    reason: str
    #: present only when a country rule decided (issue 17)
    country: CheckCountry | None = None


class CountryCreate(_Input):
    """A new country rule. Services not named keep the Internet network's verdict."""

    name: str = Field(description="1–64 printable characters, unique")
    codes: list[str] = Field(
        description="ISO 3166-1 alpha-2 codes, '*' (every other country), 'unknown'",
        examples=[["DE", "AT", "CH"]],
    )
    allow: list[str] = Field(default_factory=list, description="service keys to allow")
    block: list[str] = Field(default_factory=list, description="service keys to block")


class CountryUpdate(_Input):
    """A partial change: only the fields given change."""

    name: str | None = None
    codes: list[str] | None = None
    allow: list[str] = Field(default_factory=list)
    block: list[str] = Field(default_factory=list)
    inherit: list[str] = Field(
        default_factory=list, description="services given back to the Internet networks"
    )


class CountryPublic(BaseModel):
    id: int | None
    name: str
    codes: list[str]
    services: dict[str, Literal["allow", "block"]]


class CountryLookupPublic(BaseModel):
    address: str
    country: str | None
    range: str | None
    rule: str | None


class GeoStatusPublic(BaseModel):
    source: str | None
    date: str | None
    loaded_at: float | None
    ipv4_ranges: int
    ipv6_ranges: int
    age_days: int | None
    warning: str | None


class BanPublic(BaseModel):
    """A ban; times are epoch seconds, ``remaining`` whole seconds."""

    address: str
    jail: str
    scope: list[str]
    reason: str
    since: float
    until: float
    remaining: int
    failures: int
    offence: int
    origin: str = Field(
        description="what made it: jail:NAME (detected at a node) or manual (an administrator)"
    )
    node: str | None = Field(description="the node that detected it; null: an administrator's")
    site: str | None = Field(description="that node's site; null: an administrator's")


#: A ban's length: a JSON integer, never a boolean or a float (``1e30``). Its
#: bounds are the ban use cases' (``check_ban_seconds``: 1 s to 10 years),
#: shown here in the document.
BanSeconds = Annotated[
    int,
    Strict(),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_BAN_SECONDS}),
]


class BanCreate(_Input):
    address: str = Field(examples=["203.0.113.7", "198.51.100.0/24"])
    jail: str = "manual"
    seconds: BanSeconds | None = Field(
        default=None, description="default: the ips_bantime setting; at most 10 years"
    )
    reason: str = ""


class BanImport(_Input):
    """Many bans at once: one address or CIDR per line, ``#`` comments allowed."""

    lines: list[str]
    jail: str = "manual"
    seconds: BanSeconds | None = None


class BanImportResult(BaseModel):
    added: int
    skipped: list[str]


class BanTrust(_Input):
    """Never block an address: ``POST /api/v1/bans/trust``."""

    address: str = Field(examples=["203.0.113.7", "198.51.100.0/24"])


class TrustResult(BaseModel):
    network: NetworkPublic = Field(description="the never-block network (added or marked)")
    created: bool = Field(description="true when the network was added")
    lifted: list[str] = Field(description="the bans lifted (addresses or CIDRs)")


class ApplyRequest(_Input):
    confirm_seconds: int | None = Field(
        default=None,
        ge=5,
        le=3600,
        description="roll back unless POST /api/v1/apply/confirm comes within this time",
    )


class ApplyStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    deadline: float | None = None


class SourceStatusPublic(BaseModel):
    """The health of one log source the agent follows, or of one part of its
    loop (``agent:…``) while that part fails; times are epoch seconds."""

    source: str
    jail: str
    ok: bool
    error: str = Field(description="why it fails; empty when healthy")
    since: float = Field(description="when the current state (failing or healthy) began")
    failures: int = Field(description="failed attempts in the current episode")
    updated_at: float
    node: str = Field(
        default="", description="the node whose agent recorded it (empty: before nodes)"
    )


class IpsStatus(BaseModel):
    enabled: bool
    active_bans: int
    jails: dict[str, dict[str, int]]
    sources: list[SourceStatusPublic] = Field(
        default_factory=list, description="what the agent last recorded of each source"
    )


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class NodePublic(BaseModel):
    """One PBX running the agent, as it last reported; times are epoch seconds.

    The same fields as ``pbxfw node list --json``.
    """

    name: str
    site: str
    state: Literal["up", "stale", "drifted"] = Field(
        description="stale: no report for 30 s; drifted: applied_revision is not stored_revision"
    )
    last_seen: float = Field(description="the node's last report, by its clock")
    seconds_since_report: float
    applied_revision: int | None = Field(
        description="the configuration revision in the node's kernel; null: none applied"
    )
    stored_revision: int
    kernel_bans: int = Field(description="bans (address or subnet, jail) in the node's kernel")
    version: str = Field(description="the node's pbxfw version")
    log_lag_bytes: int = Field(description="bytes written to its logs and not read yet")
    last_error: str = Field(description="its agent's newest failure, one line; empty when none")
    started_at: float = Field(description="when its agent started")
    registered_at: float = Field(description="when the node first reported (again after rm)")


class SiteCreate(_Input):
    """``POST /api/v1/sites``: a new site (its configuration starts as `pbxfw init` makes it)."""

    name: str = Field(
        max_length=63,
        description="1-63 letters, digits, '-', '_', '.', first a letter or a digit",
    )


class SitePublic(BaseModel):
    """One site, as ``pbxfw site list --json`` shows it; ``created_at`` in epoch seconds."""

    name: str
    created_at: float
