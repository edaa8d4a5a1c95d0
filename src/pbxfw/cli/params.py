"""Plain text and path parameters parsed without pydantic (start-up time).

Typer (0.2x) turns every parameter value into its annotated type through a
pydantic ``TypeAdapter``, built on first use: ``pbxfw ips scan FILE`` (which
needs no pydantic otherwise) paid ~50 ms importing pydantic and building
adapters, ``pbxfw apply --netns NS --db FILE`` ~15 ms. For the kinds of
parameter pbxfw declares most (``str``, ``Path``, ``list`` of either, flags;
no ``parser``, no choices) the adapter's answer is known: click already gives
a ``str``, which the ``str`` adapter returns as it is; the ``Path`` adapter is
``Path(text)`` (what pydantic does with a text) followed by Typer's own path
check, ``coerce_cli_path``, called here the same way; a flag's value is a
``bool`` already. So :func:`install` gives such parameters a coercion that
does just that. Any other kind, and any value that is not what a command
line gives (a ``str``, a flag's ``bool``), keeps Typer's adapter, built only
when such a value comes (a missing option's ``None`` never needs one).

It reaches into Typer's private coercion layer (``typer._coercion``): with a
Typer without it, :func:`install` does nothing and Typer's way is used.
tests/cli/test_params.py checks the values against Typer's own adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

__all__ = ["install"]


def install(command: Any) -> int:
    """Give every plain ``str``/``Path``/``bool`` parameter of ``command`` and its
    subcommands the pydantic-free coercion; returns how many it changed."""
    try:
        from typer._coercion import RuntimeParam, TypeDescriptor
        from typer._param_types import coerce_cli_path
    except ImportError:  # another Typer: its own way for every parameter
        return 0

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):  # type: ignore[misc]
        """``str`` / ``Path`` (or a list of them), ``bool``: as Typer's adapter gives them."""

        descriptor: TypeDescriptor
        kind: type | None
        is_list: bool

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.kind is None:
                return self._typer(param, value, ctx)
            if self.kind is bool:
                # A flag's value is a bool already (None, for --help, never
                # gets here); anything else is Typer's to read.
                return value if type(value) is bool else self._typer(param, value, ctx)
            items = list(value) if self.is_list and isinstance(value, list | tuple) else None
            values = items if items is not None else [value]
            if not all(type(v) is str for v in values):
                return self._typer(param, value, ctx)  # not from a command line
            if self.kind is Path:
                info = self.parameter_info
                values = [
                    coerce_cli_path(Path(v), info, path_type=Path, param=param, ctx=ctx)
                    for v in values
                ]
            # A list parameter gives a list (one value given: a list of one).
            return values if self.is_list else values[0]

        def _typer(self, param: Any, value: Any, ctx: Any) -> Any:
            from typer._coercion import build_runtime_param

            return build_runtime_param(self.descriptor).coerce(value, param=param, ctx=ctx)

    def plain(descriptor: Any) -> tuple[type, bool] | None:
        """(kind, is_list) when ``descriptor`` is one of the plain kinds."""
        annotation, info = descriptor.annotation, descriptor.parameter_info
        if info.parser is not None or descriptor.file_annotation is not None:
            return None
        if getattr(descriptor, "choices", None) is not None:
            return None
        is_list = get_origin(annotation) is list
        if is_list:
            args = get_args(annotation)
            if len(args) != 1 or args[0] is bool:
                return None
            annotation = args[0]
        if annotation is str or annotation is bool:
            return (annotation, is_list)
        if annotation is Path and (info.path_type is None or info.path_type is Path):
            return (Path, is_list)
        return None

    def give(param: Any) -> bool:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            return False
        # Any other kind: Typer's adapter, built only for a value (a missing
        # option's None never needs it).
        kind = plain(descriptor) or (None, False)
        param._runtime_param = PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
            kind=kind[0],
            is_list=kind[1],
        )
        return True

    def with_plain_help(command: Any) -> None:
        # --help is made per command on first use (it is not in ``params``
        # yet); it is a flag like any other.
        made = command.get_help_option

        def get_help_option(ctx: Any) -> Any:
            option = made(ctx)
            if option is not None:
                give(option)
            return option

        command.get_help_option = get_help_option

    changed = 0
    stack = [command]
    while stack:
        current = stack.pop()
        changed += sum(give(param) for param in current.params)
        if hasattr(current, "get_help_option"):
            with_plain_help(current)
        stack.extend(getattr(current, "commands", {}).values())
    return changed
