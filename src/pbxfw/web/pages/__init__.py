"""The server-rendered admin page: dashboard, firewall, networks, apply, check, bans, IPS,
services, countries, feeds, fingerprints, notifications, history, PBXs.

Every page is plain HTML from a Jinja2 template and works without
JavaScript; ``static/pbxfw.js`` only adds comfort (the mask list follows the
address family, switches save on change, the apply countdown). Forms post
back to the page that shows them and redirect after success
(post/redirect/get), with a one-time message in a signed cookie.

Every form post carries the session's CSRF token and is refused without it.
The routes are thin: read the form, call one use case, render or redirect.
Errors of the use cases come back keyed by field and are shown next to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from pbxfw.web.pages.apply import apply_now, apply_page, apply_status, keep_changes, roll_back
from pbxfw.web.pages.bans import add_ban, ban_details, bans_page, never_block, unban
from pbxfw.web.pages.check import check_page
from pbxfw.web.pages.common import error_page
from pbxfw.web.pages.countries import (
    add_country,
    countries_page,
    delete_country,
    update_country,
)
from pbxfw.web.pages.dashboard import dashboard_page
from pbxfw.web.pages.feeds import add_feed, delete_feed, feeds_page, update_feed, update_feeds
from pbxfw.web.pages.fingerprints import (
    add_fingerprint,
    fingerprints_page,
    remove_fingerprint,
)
from pbxfw.web.pages.firewall import firewall_page, save_switches
from pbxfw.web.pages.history import history_entry_page, history_page, restore_revision
from pbxfw.web.pages.ips import ips_page, save_ips
from pbxfw.web.pages.login import home, login, login_page, login_url, logout
from pbxfw.web.pages.network_form import (
    create_network,
    delete_network,
    edit_network_page,
    new_network_page,
    update_network,
)
from pbxfw.web.pages.nodes import nodes_page, remove_node
from pbxfw.web.pages.notifications import (
    add_channel,
    delete_channel,
    notifications_page,
    test_channel,
)
from pbxfw.web.pages.services import (
    add_custom_service,
    remove_custom_service,
    save_ports,
    services_page,
)

__all__ = ["error_page", "login_url", "router"]


# -- the router -------------------------------------------------------------------------


def router() -> APIRouter:
    """The page's routes (not in the OpenAPI document)."""
    r = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    get, post = ["GET"], ["POST"]
    routes: list[tuple[str, Any, list[str]]] = [
        ("/", home, get),
        ("/login", login_page, get),
        ("/login", login, post),
        ("/logout", logout, post),
        ("/dashboard", dashboard_page, get),
        ("/firewall", firewall_page, get),
        ("/firewall/switches", save_switches, post),
        ("/networks/new", new_network_page, get),
        ("/networks/new", create_network, post),
        ("/networks/{network_id}/edit", edit_network_page, get),
        ("/networks/{network_id}/edit", update_network, post),
        ("/networks/{network_id}/delete", delete_network, post),
        ("/apply", apply_page, get),
        ("/apply", apply_now, post),
        ("/apply/keep", keep_changes, post),
        ("/apply/rollback", roll_back, post),
        ("/apply/status", apply_status, get),
        ("/check", check_page, get),
        ("/bans", bans_page, get),
        ("/bans/add", add_ban, post),
        ("/bans/unban", unban, post),
        ("/bans/never-block", never_block, post),
        ("/bans/{address:path}", ban_details, get),
        ("/ips", ips_page, get),
        ("/ips", save_ips, post),
        ("/services", services_page, get),
        ("/services/ports", save_ports, post),
        ("/services/custom", add_custom_service, post),
        ("/services/custom/{key}/delete", remove_custom_service, post),
        ("/countries", countries_page, get),
        ("/countries", add_country, post),
        ("/countries/{rule_id}/edit", update_country, post),
        ("/countries/{rule_id}/delete", delete_country, post),
        ("/fingerprints", fingerprints_page, get),
        ("/fingerprints", add_fingerprint, post),
        ("/fingerprints/delete", remove_fingerprint, post),
        ("/feeds", feeds_page, get),
        ("/feeds", add_feed, post),
        ("/feeds/update", update_feeds, post),
        ("/feeds/{feed_id}/update", update_feed, post),
        ("/feeds/{feed_id}/delete", delete_feed, post),
        ("/nodes", nodes_page, get),
        ("/nodes/{name}/delete", remove_node, post),
        ("/history", history_page, get),
        ("/history/{rev}", history_entry_page, get),
        ("/history/{rev}/restore", restore_revision, post),
        ("/notifications", notifications_page, get),
        ("/notifications", add_channel, post),
        ("/notifications/{name}/test", test_channel, post),
        ("/notifications/{name}/delete", delete_channel, post),
    ]
    for path, endpoint, methods in routes:
        r.add_api_route(path, endpoint, methods=methods)
    return r
