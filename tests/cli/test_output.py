"""The CLI's plain output helper prints what Rich prints, without Rich."""

from __future__ import annotations

import io
import sys
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxfw.cli import common

#: Surrogates: text a terminal never gets (annotated: hypothesis takes the literal category names).
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)


def _rich(text: str) -> str:
    from rich.console import Console

    out = io.StringIO()
    # console()'s settings for a pipe (the width only matters for wrapping,
    # which soft_wrap turns off).
    Console(file=out, highlight=False, soft_wrap=True, width=160).print(text, markup=False)
    return out.getvalue()


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=SURROGATES),
        max_size=300,
    )
    | st.sampled_from(
        [
            "applied configuration revision 3 in network namespace pbx-1",
            "[bold]not markup[/bold] ½ 漢字",
            "a :thumbs_up: b",
            "tab\there",
            "",
        ]
    )
)
def test_say_prints_what_rich_prints(text: str) -> None:
    real_stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", real_stdout)  # the sys common writes to
        mp.setattr(common, "console", lambda stderr=False: _console_on(real_stdout))
        common.say(text)
    assert real_stdout.getvalue() == _rich(text)


def _console_on(out: io.StringIO) -> object:
    from rich.console import Console

    return Console(file=out, highlight=False, soft_wrap=True, width=160)
