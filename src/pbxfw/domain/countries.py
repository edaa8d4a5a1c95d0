"""Country rules (issue 17): a name, country codes, and an allow/block per service.

A rule refines only the addresses whose most specific network is a permanent
``Internet`` network (DESIGN §7): every explicit network wins over it. A rule
names ISO 3166-1 alpha-2 codes, ``*`` (every country that no other rule
names) and/or ``unknown`` (addresses in no country of the database). Its
``services`` hold only the services it names: a service it does not name
keeps the verdict of the ``Internet`` network, so ``--block sip`` changes
SIP and nothing else (docs/countries-and-feeds.md). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pbxfw.domain.network_model import Verdict, name_key, validate_name
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "EVERY_OTHER",
    "ISO_CODES",
    "UNKNOWN",
    "CountryRule",
    "country_rule_json",
    "parse_codes",
    "rule_for",
    "services_of",
    "validate_country_rule",
]

#: The token for every country that no other rule names.
EVERY_OTHER = "*"
#: The token for addresses that the country database places in no country.
UNKNOWN = "unknown"

#: ISO 3166-1 alpha-2 (the 249 assigned codes) and ``XK`` (Kosovo: user-assigned,
#: but the registries and every country database use it).
_ISO_TEXT = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL
    BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV
    CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD
    GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM
    IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK
    LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW
    MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR
    PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS
    ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY
    UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK
"""
ISO_CODES: frozenset[str] = frozenset(_ISO_TEXT.split())


@dataclass(frozen=True, slots=True)
class CountryRule:
    """A stored country rule; ``codes`` are upper-case ISO codes, ``*`` or ``unknown``."""

    name: str
    codes: tuple[str, ...]
    services: Mapping[str, Verdict] = field(default_factory=dict)
    id: int | None = None

    def with_changes(self, **changes: object) -> CountryRule:
        return replace(self, **changes)  # type: ignore[arg-type]


def parse_codes(codes: str | Iterable[str], field: str = "codes") -> tuple[str, ...]:
    """Comma- or space-separated codes → canonical, sorted, without repeats.

    ISO codes are upper-cased (``de`` is ``DE``); ``*`` and ``unknown`` are
    kept as they are. A code that is not an ISO 3166-1 alpha-2 code raises
    ValidationError naming ``field`` and the fix.
    """
    items = codes.replace(",", " ").split() if isinstance(codes, str) else list(codes)
    found: set[str] = set()
    for item in items:
        raw = item.strip()
        if raw.lower() == UNKNOWN:
            found.add(UNKNOWN)
        elif raw == EVERY_OTHER:
            found.add(EVERY_OTHER)
        elif raw.upper() in ISO_CODES:
            found.add(raw.upper())
        else:
            raise ValidationError(
                FieldError(
                    field,
                    f"{raw!r} is not an ISO 3166-1 alpha-2 country code; give two letters "
                    "such as DE, AT, CH, or '*' for every other country, or 'unknown'",
                )
            )
    if not found:
        raise ValidationError(
            FieldError(field, "is empty; give country codes such as DE,AT,CH, '*' or 'unknown'")
        )
    # '*' and 'unknown' first, then the countries in order.
    special = [c for c in (EVERY_OTHER, UNKNOWN) if c in found]
    return tuple(special + sorted(found - {EVERY_OTHER, UNKNOWN}))


def _verdicts(
    allow: Sequence[str], block: Sequence[str], service_keys: Sequence[str]
) -> dict[str, Verdict]:
    known = set(service_keys)
    both = set(allow) & set(block)
    if both:
        raise ValidationError(
            FieldError("services", f"{', '.join(sorted(both))} both allowed and blocked; pick one")
        )
    services: dict[str, Verdict] = {}
    for name, keys, verdict in (("allow", allow, Verdict.ALLOW), ("block", block, Verdict.BLOCK)):
        for key in keys:
            if key not in known:
                raise ValidationError(
                    FieldError(
                        name,
                        f"unknown service {key!r}; known: {', '.join(service_keys)}",
                    )
                )
            services[key] = verdict
    return services


def validate_country_rule(
    name: str,
    codes: str | Iterable[str],
    services: Mapping[str, Verdict],
    others: Iterable[CountryRule],
    service_keys: Sequence[str],
    *,
    own_id: int | None = None,
) -> CountryRule:
    """The one validator: name, codes, services, and no code in two rules.

    ``services`` maps service keys to verdicts (only the named ones).
    ``others`` are the stored rules; the one with ``own_id`` is the rule
    being changed. Raises ValidationError naming the field and the fix.
    """
    name = validate_name(name)
    parsed = parse_codes(codes)
    verdicts = _verdicts(
        [k for k, v in services.items() if v == Verdict.ALLOW],
        [k for k, v in services.items() if v == Verdict.BLOCK],
        service_keys,
    )
    key = name_key(name)
    for other in others:
        if own_id is not None and other.id == own_id:
            continue
        if name_key(other.name) == key:
            raise ValidationError(
                FieldError("name", f"country rule {other.name!r} exists; choose another name")
            )
        shared = sorted(set(parsed) & set(other.codes))
        if shared:
            raise ValidationError(
                FieldError(
                    "codes",
                    f"{', '.join(shared)} already in country rule {other.name!r}; "
                    "a code belongs to one rule: remove it there first or edit that rule",
                )
            )
    return CountryRule(name=name, codes=parsed, services=verdicts, id=own_id)


def services_of(allow: Sequence[str], block: Sequence[str]) -> dict[str, Verdict]:
    """``--allow``/``--block`` lists → the services mapping (checked by the validator)."""
    both = set(allow) & set(block)
    if both:
        raise ValidationError(
            FieldError("services", f"{', '.join(sorted(both))} both allowed and blocked; pick one")
        )
    out = {k: Verdict.ALLOW for k in allow}
    out.update({k: Verdict.BLOCK for k in block})
    return out


def rule_for(code: str | None, rules: Iterable[CountryRule]) -> CountryRule | None:
    """The rule deciding a country (``None``: an address in no country).

    A rule naming the code wins; else ``*`` for a country, ``unknown`` for no
    country; else no rule (the ``Internet`` network decides).
    """
    fallback: CountryRule | None = None
    want = UNKNOWN if code is None else code
    for rule in rules:
        if want in rule.codes:
            return rule
        if code is not None and EVERY_OTHER in rule.codes:
            fallback = rule
    return fallback


def country_rule_json(rule: CountryRule) -> dict[str, object]:
    return {
        "id": rule.id,
        "name": rule.name,
        "codes": list(rule.codes),
        "services": {k: rule.services[k].value for k in sorted(rule.services)},
    }
