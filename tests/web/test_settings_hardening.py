"""Issue 13, items 4, 6 and 11 (settings): each reproduction through the real
REST server and the real CLI, on one database.

* 4: ``pjsip_include_path`` named any file, which the root agent replaced;
* 6: durations had no bound (``{"seconds": 1e30}`` was accepted, then the Bans
  page answered 500, ``bans list`` printed a traceback and ``compile`` emitted
  ``timeout 1000000000000000019884624838656s``; ``bans add X --seconds
  253402300800`` stored the ban, then crashed);
* 11: ``{"sip_port": true}`` was stored as port 1; strings were switches;
  text settings took NUL and control characters.

Every refusal is a 422 naming the field (exit 2 on the CLI) and leaves the
stored settings and bans as they were.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any

import pytest

from pbxfw.domain.bans import Ban
from pbxfw.domain.settings import MAX_BAN_SECONDS
from pbxfw.storage.repository import Store
from tests.web.conftest import TestClient
from tests.web.test_pages import log_in

API = "/api/v1"
TOO_LONG = "99999999999999999999w"


def fields(answer: Any) -> list[str]:
    return [error["loc"][-1] for error in answer.json()["detail"]]


def messages(answer: Any) -> str:
    return " ".join(error["msg"] for error in answer.json()["detail"])


_NFT_TIME = re.compile(r"timeout ((?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?)[,\s}]")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def timeouts(ruleset: str, address: str) -> list[int]:
    """The lifetimes, in seconds, of ``address``'s elements in a ruleset text
    (``3650d``, ``3649d23h59m58s``, ``600s``: the forms nft reads)."""
    found = []
    for match in re.finditer(re.escape(address) + r" " + _NFT_TIME.pattern, ruleset):
        parts = re.findall(r"(\d+)([dhms])", match.group(1))
        found.append(sum(int(n) * _UNIT[u] for n, u in parts))
    return found


def stored_rows(store: Store) -> dict[str, Any]:
    with store.read() as repo:
        return repo.stored_settings()


# -- item 4: the include pbxfw writes as root ------------------------------------------


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/etc/asterisk/../passwd.conf", "/etc/asterisk/sub/x.conf", "x.conf"]
)
def test_the_include_cannot_name_a_file_outside_the_asterisk_folder(
    client: TestClient, auth: dict[str, str], cli: Any, store: Store, path: str
) -> None:
    before = stored_rows(store)
    answer = client.patch(f"{API}/settings", headers=auth, json={"pjsip_include_path": path})
    assert answer.status_code == 422 and fields(answer) == ["pjsip_include_path"]
    result = cli("settings", "set", f"pjsip_include_path={path}")
    assert result.exit_code == 2 and "pjsip_include_path" in result.stderr
    assert "Traceback" not in result.stderr
    assert stored_rows(store) == before


def test_the_include_in_the_asterisk_folder_is_accepted(
    client: TestClient, auth: dict[str, str], cli: Any
) -> None:
    answer = client.patch(
        f"{API}/settings",
        headers=auth,
        json={"pjsip_include_path": "/etc/asterisk/pbxfw_pjsip_nat.conf"},
    )
    assert answer.status_code == 200
    # Moving the folder alone would strand the include: refused, naming the folder.
    result = cli("settings", "set", "asterisk_config_dir=/opt/asterisk/etc")
    assert result.exit_code == 2 and "asterisk_config_dir" in result.stderr
    result = cli(
        "settings",
        "set",
        "asterisk_config_dir=/opt/asterisk/etc",
        "pjsip_include_path=/opt/asterisk/etc/nat.conf",
    )
    assert result.exit_code == 0, result.stderr


# -- item 11: strict types over REST, text parsed on the CLI -------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"sip_port": True},
        {"sip_port": 5060.0},
        {"sip_port": "5070"},
        {"firewall_enabled": "on"},
        {"firewall_enabled": "yes"},
        {"ips_enabled": 1},
        {"cti_ports": [True, 8000]},
        {"ips_maxretry": False},
        {"log_ssh": "/tmp/x\u0000y"},
        {"log_web": "/var/log/nginx/error.log\n"},
        {"log_ssh": "journal:ssh"},
        {"log_ssh": "journal:__CURSOR=x"},
        {"external_address": "203.0.113.5\u001b[2J"},
        {"asterisk_config_dir": "/etc/\u202easterisk"},
    ],
)
def test_rest_values_are_strictly_typed_and_clean(
    client: TestClient, auth: dict[str, str], store: Store, changes: dict[str, Any]
) -> None:
    before = client.get(f"{API}/settings", headers=auth).json()
    rows = stored_rows(store)
    answer = client.patch(f"{API}/settings", headers=auth, json=changes)
    assert answer.status_code == 422, answer.text
    assert fields(answer) == list(changes)
    assert client.get(f"{API}/settings", headers=auth).json() == before
    assert stored_rows(store) == rows


def test_sip_port_true_is_not_port_one(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.patch(f"{API}/settings", headers=auth, json={"sip_port": True})
    assert answer.status_code == 422
    assert "a port is a number from 1 to 65535" in messages(answer)
    assert client.get(f"{API}/settings", headers=auth).json()["sip_port"] == 5060


@pytest.mark.parametrize(
    "pair",
    [
        "sip_port=true",
        "sip_port=5060.0",
        "firewall_enabled=maybe",
        "ips_maxretry=ten",
        "cti_ports=4222,x",
        "log_ssh=relative/auth.log",
        "log_ssh=/tmp/x\x00y",
        "log_ssh=journal:ssh",
        "log_web=journal:",
        "external_address=pbx example",
    ],
)
def test_the_cli_refuses_bad_text_with_exit_2(cli: Any, store: Store, pair: str) -> None:
    rows = stored_rows(store)
    result = cli("settings", "set", pair)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {pair.split('=')[0]}:")
    assert stored_rows(store) == rows


def test_the_cli_parses_text(cli: Any, client: TestClient, auth: dict[str, str]) -> None:
    result = cli("settings", "set", "firewall_enabled=on", "sip_port=5070", "ips_findtime=10m")
    assert result.exit_code == 0, result.stderr
    settings = client.get(f"{API}/settings", headers=auth).json()
    assert (settings["firewall_enabled"], settings["sip_port"], settings["ips_findtime"]) == (
        True,
        5070,
        600,
    )


# -- item 6: durations -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ips_bantime", "ips_bantime_max", "ips_findtime"])
def test_setting_durations_are_bounded(
    client: TestClient, auth: dict[str, str], cli: Any, store: Store, key: str
) -> None:
    rows = stored_rows(store)
    answer = client.patch(f"{API}/settings", headers=auth, json={key: TOO_LONG})
    assert answer.status_code == 422 and fields(answer) == [key]
    result = cli("settings", "set", f"{key}={TOO_LONG}")
    assert result.exit_code == 2 and key in result.stderr
    assert stored_rows(store) == rows


def test_the_longest_durations(client: TestClient, auth: dict[str, str], cli: Any) -> None:
    answer = client.patch(
        f"{API}/settings",
        headers=auth,
        json={"ips_bantime_max": "3650d", "ips_bantime": "3650d", "ips_findtime": "30d"},
    )
    assert answer.status_code == 200, answer.text
    assert cli("settings", "set", "ips_findtime=31d").exit_code == 2
    assert cli("settings", "set", "ips_bantime_max=3651d").exit_code == 2


@pytest.mark.parametrize("seconds", [1e30, 1e10, MAX_BAN_SECONDS + 1, 10**20, True, 0, "60"])
def test_a_ban_s_length_is_bounded_over_rest(
    client: TestClient, auth: dict[str, str], seconds: object
) -> None:
    answer = client.post(
        f"{API}/bans", headers=auth, json={"address": "203.0.113.9", "seconds": seconds}
    )
    assert answer.status_code == 422 and fields(answer) == ["seconds"]
    answer = client.post(
        f"{API}/bans/import", headers=auth, json={"lines": ["203.0.113.10"], "seconds": seconds}
    )
    assert answer.status_code == 422 and fields(answer) == ["seconds"]
    assert client.get(f"{API}/bans", headers=auth).json() == []


def test_a_ban_of_ten_years_is_listed_shown_and_compiled(
    client: TestClient, auth: dict[str, str], cli: Any
) -> None:
    answer = client.post(
        f"{API}/bans", headers=auth, json={"address": "203.0.113.9", "seconds": MAX_BAN_SECONDS}
    )
    assert answer.status_code == 201, answer.text
    log_in(client)
    assert client.get("/bans").status_code == 200
    assert cli("bans", "list").exit_code == 0
    compiled = cli("compile")
    assert compiled.exit_code == 0
    assert all(t > MAX_BAN_SECONDS - 60 for t in timeouts(compiled.stdout, "203.0.113.9"))


def test_bans_add_refuses_before_storing(cli: Any, store: Store) -> None:
    result = cli("bans", "add", "203.0.113.9", "--seconds", "253402300800")
    assert result.exit_code == 2
    assert "seconds" in result.stderr and "10 years" in result.stderr
    assert cli("bans", "list", "--json").stdout.strip() == "[]"  # nothing stored
    result = cli("bans", "import", "-", "--seconds", "99999999999", input="203.0.113.10\n")
    assert result.exit_code == 2
    assert cli("bans", "list", "--json").stdout.strip() == "[]"


def test_a_ban_stored_with_an_absurd_expiry_is_clamped_everywhere(
    client: TestClient, auth: dict[str, str], cli: Any, store: Store
) -> None:
    """As the old REST API stored ``{"seconds": 1e30}``."""
    now = time.time()
    with store.write() as repo:
        for address, expiry in (("203.0.113.9", now + 1e30), ("2001:db8::9", float("inf"))):
            subnet = ipaddress.ip_network(address)
            repo.save_ban(Ban(subnet, "manual", frozenset({"*"}), "old", now, expiry))
        repo.set_meta("bans_revision", "99")
    listed = cli("bans", "list")
    assert listed.exit_code == 0 and "Traceback" not in listed.stderr
    as_json = cli("bans", "list", "--json")
    assert as_json.exit_code == 0
    api = client.get(f"{API}/bans", headers=auth)
    assert api.status_code == 200
    for ban in api.json():
        assert ban["until"] <= ban["since"] + MAX_BAN_SECONDS
        assert ban["remaining"] <= MAX_BAN_SECONDS
    log_in(client)
    page = client.get("/bans")
    assert page.status_code == 200 and "203.0.113.9" in page.text
    compiled = cli("compile")
    assert compiled.exit_code == 0, compiled.stderr
    # Each ban (and its guard element) at most 10 years, in a form nft reads.
    for address in ("203.0.113.9", "2001:db8::9"):
        lifetimes = timeouts(compiled.stdout, address)
        assert len(lifetimes) == 2
        assert all(MAX_BAN_SECONDS - 60 <= t <= MAX_BAN_SECONDS for t in lifetimes)
    assert not re.search(r"timeout \d{9,}s", compiled.stdout)
