"""Two processes writing at once lose nothing and fail nothing.

SQLite: WAL + BEGIN IMMEDIATE; PostgreSQL: the writers' advisory lock.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pbxfw.usecases import ConfigService

WRITER = """
import sys
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
svc = ConfigService(Store.open(database_url(sys.argv[1])))
third = int(sys.argv[2])
for i in range(200):
    svc.add_network(NetworkChange(name=f"w{third}-{i}", subnet=f"10.{third}.{i}.0/24"))
"""


def test_two_writers_store_all_400_networks(svc: ConfigService, db_url: str) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(n)], stderr=subprocess.PIPE)
        for n in (1, 2)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    names = {n.name for n in svc.networks()}
    assert len(names) == 402  # 400 + the two permanent networks
    assert svc.revision() == 1 + 400  # init, then one bump per add


def test_cli_writers_in_parallel(svc: ConfigService, db_url: str) -> None:
    """The real command, 2 × 10 processes at once."""
    pbxfw = Path(sys.executable).with_name("pbxfw")
    procs = [
        subprocess.Popen(
            [str(pbxfw), "network", "add", f"c{p}-{i}", f"172.16.{p}.{i}/32", "--db", db_url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for p in (1, 2)
        for i in range(10)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert len(svc.networks()) == 22
