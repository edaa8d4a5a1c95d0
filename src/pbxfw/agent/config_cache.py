"""The applied configuration kept beside the agent's state, for a start without the database.

The agent learns the configuration it enforces from the database. An agent
(re)started while the database cannot be reached (``kill -9`` during an
outage, a crash, an upgrade) would otherwise know no configuration at all:
no log sources, no detector, no never-block networks. So every time it
reads a new applied configuration it keeps a copy here
(``<state folder>/<namespace>/agent-config.json``: the revision and the
same document ``pbxfw export`` writes, and the country database's ranges
when country rules read them; written atomically); at a start
without the database it follows that copy until the database answers
(agent.rules ``Rules.load``). The file holds networks and settings, no
secrets; it is the owner's only (0600), like the rest of the state folder.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.geo import pack_table, unpack_table
from pbxfw.usecases.applied import configuration_from_document
from pbxfw.usecases.document import document_of

__all__ = ["CONFIG_CACHE_NAME", "read_cached_config", "write_cached_config"]

log = logging.getLogger("pbxfw.agent")

CONFIG_CACHE_NAME = "agent-config.json"


def write_cached_config(path: Path, revision: int | None, config: Configuration) -> None:
    """Keep ``config`` (applied ``revision``) in ``path``: a reader sees the
    old file or the new one, never half."""
    kept: dict[str, object] = {"revision": revision, "configuration": document_of(config)}
    if config.countries is not None:
        # The ranges the country rules read (issue 17), packed: a few MB.
        kept["countries"] = base64.b64encode(pack_table(config.countries)).decode("ascii")
    text = json.dumps(kept)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_cached_config(path: Path) -> tuple[int | None, Configuration] | None:
    """The kept (revision, configuration), or None when there is none or it
    cannot be read or parsed (logged: the agent then waits for the database)."""
    try:
        data = json.loads(path.read_text())
        revision = data["revision"]
        if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int)):
            raise ValueError("revision is not a number")
        packed = data.get("countries")
        table = None if packed is None else unpack_table(base64.b64decode(packed))
        config = configuration_from_document(data["configuration"], table)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or foreign file is no configuration
        log.warning("%s: cannot use the kept configuration: %s", path, exc)
        return None
    return revision, config
