"""The network form: add, edit and delete a network."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from pbxfw.domain.network_model import Network, Verdict
from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.usecases.config import NetworkChange
from pbxfw.web.deps import (
    AdminSession,
    WebContext,
)
from pbxfw.web.pages.common import (
    CsrfForm,
    form_errors,
    form_text,
    redirect,
    render,
    table_columns,
    whole_number,
)
from pbxfw.web.pages.sites import SiteContext
from pbxfw.web.security import Session

# -- the network form ------------------------------------------------------------------


@dataclass(slots=True)
class NetworkForm:
    """What the network form shows: values as typed, and errors by input name."""

    name: str = ""
    address: str = ""
    prefix: int = 24
    description: str = ""
    services: dict[str, bool] = field(default_factory=dict)
    local: bool = False
    never_block: bool = False
    permanent: bool = False
    id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ipv6(self) -> bool:
        return ":" in self.address

    @classmethod
    def of(cls, network: Network) -> NetworkForm:
        return cls(
            name=network.name,
            address=str(network.subnet.network_address),
            prefix=network.subnet.prefixlen,
            description=network.description,
            services={k: v is Verdict.ALLOW for k, v in network.services.items()},
            local=network.local,
            never_block=network.never_block,
            permanent=network.permanent,
            id=network.id,
        )

    @classmethod
    def posted(cls, form: FormData, keys: tuple[str, ...]) -> NetworkForm:
        prefix = form_text(form, "prefix")
        return cls(
            name=form_text(form, "name"),
            address=form_text(form, "address").strip(),
            prefix=whole_number(prefix, 0, 128, 24),
            description=form_text(form, "description"),
            services={k: form.get(f"service_{k}") == "allow" for k in keys},
            local=form.get("local") == "on",
            never_block=form.get("never_block") == "on",
        )

    def subnet(self, form: FormData) -> str:
        """The CIDR the administrator meant: the address field may hold a whole CIDR."""
        if not self.address or "/" in self.address:
            return self.address
        prefix = form_text(form, "prefix")
        return f"{self.address}/{prefix}" if prefix else self.address

    def change(self, form: FormData, *, with_subnet: bool = True) -> NetworkChange:
        return NetworkChange(
            name=self.name,
            subnet=self.subnet(form) if with_subnet else None,
            services={k: "allow" if v else "block" for k, v in self.services.items()},
            local=self.local,
            never_block=self.never_block,
            description=self.description,
        )


# Use-case field names → the form's input names.
_NETWORK_FIELDS = {
    "subnet": "address",
    "allow": "services",
    "block": "services",
    "services": "services",
}
_NETWORK_INPUTS = frozenset({"name", "address", "services", "description"})


def _network_form(
    request: Request,
    context: WebContext,
    session: Session,
    form: NetworkForm,
    *,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    config = context.config.configuration()
    return render(
        request,
        "network_form.html",
        {"form": form, "columns": table_columns(config.services())},
        session=session,
        status_code=status_code,
    )


def new_network_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    # The toggles start as the Internet has them: what a new, unknown address gets today.
    internet = next((n for n in context.config.networks() if str(n.subnet) == "0.0.0.0/0"), None)
    services = {
        s.key: internet is not None and internet.verdict(s.key) is Verdict.ALLOW
        for s in context.config.services()
    }
    return _network_form(request, context, session, NetworkForm(services=services))


def create_network(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    keys = context.config.configuration().service_keys()
    posted = NetworkForm.posted(form, keys)
    try:
        network, notes = context.config.add_network(posted.change(form))
    except ValidationError as exc:
        posted.errors = form_errors(exc, _NETWORK_FIELDS, _NETWORK_INPUTS)
        return _network_form(request, context, session, posted, status_code=422)
    message = " ".join([f"Network “{network.name}” ({network.subnet}) added.", *notes])
    return redirect(request, "/firewall", message)


def edit_network_page(
    network_id: int, request: Request, context: SiteContext, session: AdminSession
) -> Response:
    network = context.config.network(network_id)
    return _network_form(request, context, session, NetworkForm.of(network))


def update_network(
    network_id: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    current = context.config.network(network_id)
    posted = NetworkForm.posted(form, context.config.configuration().service_keys())
    posted.id, posted.permanent = current.id, current.permanent
    if current.permanent:
        # The subnet of a permanent network cannot change; its inputs are read-only.
        posted.address, posted.prefix = (
            str(current.subnet.network_address),
            current.subnet.prefixlen,
        )
    try:
        network, notes = context.config.update_network(
            network_id, posted.change(form, with_subnet=not current.permanent)
        )
    except ValidationError as exc:
        posted.errors = form_errors(exc, _NETWORK_FIELDS, _NETWORK_INPUTS)
        return _network_form(request, context, session, posted, status_code=422)
    message = " ".join([f"Network “{network.name}” ({network.subnet}) saved.", *notes])
    return redirect(request, "/firewall", message)


def delete_network(
    network_id: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        network = context.config.remove_network(network_id)
    except PbxfwError as exc:
        return redirect(request, "/firewall", str(exc), "error")
    return redirect(request, "/firewall", f"Network “{network.name}” ({network.subnet}) deleted.")
