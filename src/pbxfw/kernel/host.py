"""The addresses of this host (or of a network namespace): never banned."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from pbxfw.domain.addresses import IPAddress

__all__ = ["host_addresses"]


def host_addresses(netns: str | None) -> list[IPAddress]:
    """This host's (or namespace's) own addresses: never banned."""
    argv = ["ip", "-j", "addr", "show"]
    if netns:
        argv = ["ip", "-n", netns, "-j", "addr", "show"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=True).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found: list[IPAddress] = []
    for link in links:
        for info in link.get("addr_info", []):
            try:
                found.append(ipaddress.ip_address(info["local"]))
            except (KeyError, ValueError):
                continue
    return found
