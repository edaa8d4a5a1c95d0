"""The web page's Apply button: what applying would change, and the Applier
(``pbxfw.web.deps.Applier``) over :class:`~pbxfw.usecases.firewall.FirewallService`."""

from __future__ import annotations

import json
from typing import Any

from pbxfw.errors import NotFoundError
from pbxfw.usecases.base import stored_configuration
from pbxfw.usecases.document import document_of
from pbxfw.usecases.firewall import AdminAccess, FirewallService

__all__ = ["FirewallApplier", "describe_changes"]


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What applying ``after`` changes compared with ``before`` (two documents), in words."""
    if before is None:
        return ["Nothing was applied yet: the whole configuration will be loaded."]
    lines: list[str] = []
    old = {n["subnet"]: n for n in before.get("networks", [])}
    new = {n["subnet"]: n for n in after.get("networks", [])}
    for subnet, n in new.items():
        if subnet not in old:
            allowed = ", ".join(k for k, v in n["services"].items() if v == "allow") or "nothing"
            lines.append(f'add network "{n["name"]}" {subnet}: allows {allowed}')
            continue
        was = old[subnet]
        changes = [
            f"{k} {was['services'].get(k, 'block')} → {v}"
            for k, v in n["services"].items()
            if was["services"].get(k, "block") != v
        ]
        for flag in ("local", "never_block"):
            if was.get(flag) != n.get(flag):
                changes.append(f"{flag.replace('_', '-')} {'on' if n.get(flag) else 'off'}")
        if was.get("name") != n.get("name"):
            changes.append(f'renamed from "{was["name"]}"')
        if changes:
            lines.append(f'network "{n["name"]}" {subnet}: ' + ", ".join(changes))
    for subnet, gone in old.items():
        if subnet not in new:
            lines.append(f'remove network "{gone["name"]}" {subnet}')
    old_services = {s["key"]: s for s in before.get("services", [])}
    new_services = {s["key"]: s for s in after.get("services", [])}
    for key in new_services.keys() - old_services.keys():
        lines.append(f"add service {key}")
    for key in old_services.keys() - new_services.keys():
        lines.append(f"remove service {key}")
    for key, value in after.get("settings", {}).items():
        if before.get("settings", {}).get(key) != value:
            lines.append(f"setting {key}: {before.get('settings', {}).get(key)} → {value}")
    return lines


class FirewallApplier:
    """The web page's Apply button for one network namespace (pbxfw.web.deps.Applier)."""

    def __init__(self, firewall: FirewallService, netns: str | None = None) -> None:
        self.firewall = firewall
        self.netns = netns

    def at_site(self, site: str) -> FirewallApplier:
        """The same button for ``site``'s configuration (``?site=NAME``): the
        same namespace and state folder, the site's applied state."""
        return FirewallApplier(self.firewall.at_site(site), self.netns)

    def preview(self) -> str:
        # What is shown is what Apply will load: a rollback is carried first.
        self.firewall.reconcile(self.netns)
        with self.firewall.store.read() as repo:
            applied = repo.get_meta("applied_document")
            stored = document_of(stored_configuration(repo))
        before = None if applied is None else json.loads(applied)
        lines = describe_changes(before, json.loads(json.dumps(stored, sort_keys=True)))
        return "\n".join(lines) if lines else "No changes since the last apply."

    def apply(self, confirm_seconds: int | None, admin_address: str | None) -> dict[str, Any]:
        admin = AdminAccess(admin_address, "web") if admin_address else None
        result = self.firewall.apply(self.netns, confirm_seconds=confirm_seconds, admin=admin)
        if result.pending:
            return {"status": "pending", "deadline": result.pending["deadline"]}
        return {"status": "applied", "deadline": None}

    def confirm(self) -> dict[str, Any]:
        change = self.firewall.confirm(self.netns)
        if change is None:
            raise NotFoundError("nothing is waiting for confirmation (it may have rolled back)")
        return {"status": "confirmed"}

    def rollback(self) -> dict[str, Any]:
        self.firewall.rollback(self.netns)
        return {"status": "rolled_back"}

    def pending(self) -> dict[str, Any] | None:
        self.firewall.reconcile(self.netns)
        change = self.firewall.pending(self.netns)
        if change is None:
            return None
        return {"status": "pending", "deadline": change["deadline"]}
