"""Fixtures of the kernel tests: the host's ruleset must not change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .lab import kernel_available, nft_ruleset


@pytest.fixture(scope="session", autouse=True)
def host_ruleset_untouched() -> Iterator[None]:
    """The host namespace's ``nft list ruleset`` is identical before and after
    the whole run: every test works in namespaces of its own."""
    if kernel_available() is not None:
        yield
        return
    before = nft_ruleset()
    yield
    assert nft_ruleset() == before, "the host's nftables ruleset changed during the tests"
