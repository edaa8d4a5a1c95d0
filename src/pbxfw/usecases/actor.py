"""Who is acting: the :class:`~pbxfw.domain.history.Actor` of the running request or command.

The adapters say who acts once, where they know it: the CLI when it opens
its store (the OS user and ``SUDO_USER``, ``local``), the REST API and the
web page where they authenticate the administrator (with the client's
address). The use cases read it where they record a change
(``usecases.history``), so no use case takes it as an argument and no
adapter records anything itself. It is a context variable: each request
(each asyncio task, and the worker thread a sync route runs in, which
copies the request's context) sees only its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pbxfw.domain.history import Actor

__all__ = ["acting", "ban_who", "current_actor", "process_actor", "use_actor"]

_actor: ContextVar[Actor | None] = ContextVar("pbxfw_actor", default=None)


def process_actor(via: str = "cli") -> Actor:
    """This process's OS user (and ``SUDO_USER`` when sudo ran it), at ``local``."""
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (a container)
        user = f"uid {os.geteuid()}"
    sudo = os.environ.get("SUDO_USER", "").strip()
    who = f"{user} (sudo: {sudo})" if sudo and sudo != user else user
    return Actor(who, via, "local")


def current_actor() -> Actor:
    """The actor the adapter named; without one, this process's user via
    ``system`` (pbxfw itself, or a program calling the use cases directly)."""
    actor = _actor.get()
    return actor if actor is not None else process_actor("system")


def ban_who() -> str | None:
    """Who an administrator's ban names (``cli:root (sudo: bob)``,
    ``web:alice``, ``rest:alice``): the actor the adapter named, through
    what; None when no adapter named one (a program calling the use case)."""
    actor = _actor.get()
    return None if actor is None else f"{actor.via}:{actor.who}"


def use_actor(actor: Actor | None) -> None:
    """Name the actor for the rest of this context (a request's task; the
    CLI's command); None forgets it."""
    _actor.set(actor)


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """``actor`` acts inside the block; the previous one afterwards."""
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)
