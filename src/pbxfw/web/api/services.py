"""``/api/v1/services``: the catalogue with resolved ports; custom services."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from pbxfw.domain.services import Service
from pbxfw.web.deps import ConfigDep
from pbxfw.web.schemas import CustomServiceCreate, ServicePublic

__all__ = ["router", "service_json"]


def service_json(service: Service) -> dict[str, Any]:
    """The shape of ``pbxfw service list --json``."""
    return {
        "key": service.key,
        "label": service.label,
        "builtin": service.builtin,
        "icmp": service.icmp,
        "ports": [{"protocol": p.protocol, "from": p.first, "to": p.last} for p in service.ports],
    }


def list_services(config: ConfigDep) -> list[dict[str, Any]]:
    """Built-in services first, then custom ones; ports follow the settings."""
    return [service_json(s) for s in config.services()]


def create_service(body: CustomServiceCreate, config: ConfigDep) -> dict[str, Any]:
    """Add a custom service; every network blocks it until allowed."""
    custom = config.add_service(body.key, body.label, body.tcp, body.udp)
    return service_json(custom.resolve())


def delete_service(key: str, config: ConfigDep) -> Response:
    """Remove a custom service (built-in ones answer 422)."""
    config.remove_service(key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def router() -> APIRouter:
    r = APIRouter(prefix="/services", tags=["services"])
    r.add_api_route("", list_services, methods=["GET"], response_model=list[ServicePublic])
    r.add_api_route(
        "",
        create_service,
        methods=["POST"],
        response_model=ServicePublic,
        status_code=status.HTTP_201_CREATED,
        responses={409: {"description": "the key is taken"}},
    )
    r.add_api_route(
        "/{key}",
        delete_service,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={404: {"description": "no such custom service"}},
    )
    return r
