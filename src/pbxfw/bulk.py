"""Helpers for steps that handle 10^5 objects at once (ban lists)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside. Making 10^5 long-lived objects
    without cycles (bans, networks, kernel elements) otherwise runs full
    collections over the whole heap again and again: 2/3 of the time of
    reading 100,000 bans. Reference counting still frees them."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
