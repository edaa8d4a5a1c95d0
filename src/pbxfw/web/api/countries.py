"""``/api/v1/countries``: country rules (list, create, read, change, delete),
``/countries/lookup``, and ``/api/v1/geo``: the country database's state (issue 17)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from pbxfw.domain.countries import CountryRule, country_rule_json
from pbxfw.errors import NotFoundError
from pbxfw.usecases.config import ConfigService
from pbxfw.usecases.geo import GeoService
from pbxfw.web.deps import ConfigDep
from pbxfw.web.schemas import (
    CountryCreate,
    CountryLookupPublic,
    CountryPublic,
    CountryUpdate,
    GeoStatusPublic,
)

__all__ = ["router"]


def _by_id(config: ConfigService, rule_id: int) -> CountryRule:
    for rule in config.country_rules():
        if rule.id == rule_id:
            return rule
    raise NotFoundError(f"no country rule with id {rule_id}")


def list_countries(config: ConfigDep) -> list[dict[str, Any]]:
    """Every country rule, in the order they were added."""
    return [country_rule_json(r) for r in config.country_rules()]


def create_country(body: CountryCreate, config: ConfigDep) -> dict[str, Any]:
    """Add a country rule; a code already in another rule answers 422 naming ``codes``."""
    rule = config.add_country(body.name, ",".join(body.codes), body.allow, body.block)
    return country_rule_json(rule)


def read_country(rule_id: int, config: ConfigDep) -> dict[str, Any]:
    return country_rule_json(_by_id(config, rule_id))


def update_country(rule_id: int, body: CountryUpdate, config: ConfigDep) -> dict[str, Any]:
    """Change only the fields given; ``inherit`` gives services back to the Internet networks."""
    _by_id(config, rule_id)
    rule = config.set_country(
        str(rule_id),
        name=body.name,
        codes=None if body.codes is None else ",".join(body.codes),
        allow=body.allow,
        block=body.block,
        inherit=body.inherit,
    )
    return country_rule_json(rule)


def delete_country(rule_id: int, config: ConfigDep) -> Response:
    _by_id(config, rule_id)
    config.remove_country(str(rule_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def lookup_country(
    config: ConfigDep, address: Annotated[str, Query(examples=["203.0.113.7"])]
) -> dict[str, object]:
    """The country of an address, the range holding it, and the rule for it."""
    return config.lookup_country(address).as_json()


def geo_status(config: ConfigDep) -> dict[str, object]:
    """The country database: source, date, age, range counts, and a warning
    when it is missing or older than 180 days."""
    return GeoService(config.store).status(now=time.time()).as_json()


def router() -> APIRouter:
    r = APIRouter(tags=["countries"])
    errors: dict[int | str, dict[str, Any]] = {404: {"description": "no such country rule"}}
    r.add_api_route(
        "/countries", list_countries, methods=["GET"], response_model=list[CountryPublic]
    )
    r.add_api_route(
        "/countries",
        create_country,
        methods=["POST"],
        response_model=CountryPublic,
        status_code=status.HTTP_201_CREATED,
    )
    r.add_api_route(
        "/countries/lookup",
        lookup_country,
        methods=["GET"],
        response_model=CountryLookupPublic,
    )
    r.add_api_route(
        "/countries/{rule_id}",
        read_country,
        methods=["GET"],
        response_model=CountryPublic,
        responses=errors,
    )
    r.add_api_route(
        "/countries/{rule_id}",
        update_country,
        methods=["PATCH"],
        response_model=CountryPublic,
        responses=errors,
    )
    r.add_api_route(
        "/countries/{rule_id}",
        delete_country,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=errors,
    )
    r.add_api_route("/geo", geo_status, methods=["GET"], response_model=GeoStatusPublic)
    return r
