"""Parameters parsed without pydantic (pbxfw.cli.params) give what Typer gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.main import get_command

from pbxfw.cli import app
from pbxfw.cli.params import install

#: Values click hands over from a command line, by annotation.
SAMPLES: dict[str, list[Any]] = {
    "str": ["abc", "", " x ", "-", "ünïcode", "a,b"],
    "bool": [True, False],
    "path": ["x", "", "-", "/", "a//b/", "does/not/exist", "~/y"],
}


def _commands() -> list[tuple[Any, Any]]:
    """(command, parameter) for every parameter of the whole command tree."""
    root = get_command(app)
    assert install(root) > 30
    found = []
    stack = [root]
    while stack:
        command = stack.pop()
        ctx = Context(command)
        found += [(command, p) for p in command.params]
        help_option = command.get_help_option(ctx)
        if help_option is not None:
            found.append((command, help_option))
        stack.extend(getattr(command, "commands", {}).values())
    return found


def _samples(param: Any) -> list[Any]:
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        return SAMPLES["bool"]
    if annotation is str:
        return SAMPLES["str"]
    if annotation is Path:
        return SAMPLES["path"]
    if annotation == list[str]:
        return [tuple(SAMPLES["str"][:3]), ("one",), []]
    if annotation == list[Path]:
        return [tuple(SAMPLES["path"][:3]), ("x",)]
    if annotation is int:
        return ["5", "-1", "x", "1.5"]
    if annotation is float:
        return ["60", "0.5", "x"]
    raise AssertionError(f"a parameter of a new kind: {param.name}: {annotation}")


def _outcome(runtime: Any, value: Any, param: Any, ctx: Context) -> tuple[str, Any]:
    try:
        return "value", runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "refused", exc.format_message()


def test_every_parameter_reads_a_value_as_typer_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x").write_text("")
    monkeypatch.chdir(tmp_path)  # relative paths: one that exists, one that does not
    checked = 0
    for command, param in _commands():
        ctx = Context(command)
        for value in [None, *_samples(param)]:
            ours = _outcome(param.get_runtime_param(), value, param, ctx)
            typers = _outcome(build_runtime_param(param.type_descriptor), value, param, ctx)
            assert ours == typers, (command.name, param.name, value)
            assert type(ours[1]) is type(typers[1])
            checked += 1
    assert checked > 200


def _imported_after(*args: str, cwd: Path) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['pbxfw', *{list(args)!r}]\n"
        "from pbxfw.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PBXFW_DB": str(cwd / "none.db")},
    )
    return set(run.stderr.split())


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (("ips", "scan", "empty.log"), {"pydantic", "typer._adapters", "sqlalchemy"}),
        (("--help",), {"pydantic", "sqlalchemy"}),
    ],
)
def test_start_up_imports_only_what_the_command_needs(
    tmp_path: Path, args: tuple[str, ...], absent: set[str]
) -> None:
    (tmp_path / "empty.log").write_text("")
    assert not absent & _imported_after(*args, cwd=tmp_path)
