"""``python -m blacksmith_mini.config_reference [--check]``: docs/CONFIGURATION.md, from the model.

It walks ``settings.Settings`` and writes one row per key: dotted TOML path, type, default
(never a secret's), environment names (``BLACKSMITH_...`` and the seed's, which it learns from
``settings.SeedEnvSource`` itself), bounds and description. A list of tables is documented once
(``pools[].name``). ``--check`` exits 1 when the file is stale (``make lint`` runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import inspect
import json
import os
import pathlib
import re
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.agent import settings as agent_settings
from blacksmith_mini.config_notes import NOTES

DEFAULT_OUTPUT = pathlib.Path("docs/CONFIGURATION.md")
ENV_PREFIX = "BLACKSMITH_"
AGENT_PREFIX = "BLACKSMITH_AGENT_"
TOP = ""  # the section of top-level keys
UNSET, HIDDEN = "unset", "(secret, not shown)"
REGENERATE = "uv run python -m blacksmith_mini.config_reference"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One documented key."""

    key: str  # dotted TOML path; ``[]`` marks a list of tables (``pools[].name``)
    section: str  # the TOML table it lives in (``vm.firecracker``, ``pools[]``, "" at the top)
    type: str
    default: str
    env: tuple[str, ...]
    bounds: str
    description: str
    secret: bool


@dataclasses.dataclass(frozen=True)
class Section:
    """A TOML table: its path, a note on how it is written, and its keys."""

    path: str
    note: str
    entries: list[Entry] = dataclasses.field(default_factory=list)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    args = typing.get_args(annotation)
    is_list = typing.get_origin(annotation) in (list, tuple) and len(args) == 1
    return _model_of(args[0]) if is_list else None


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def is_secret(field: FieldInfo) -> bool:
    """Whether the field holds a secret (``SecretStr``, possibly optional)."""
    return _without_none(field.annotation) is SecretStr


SCALARS = {str: "string", int: "integer", float: "float", bool: "boolean"}


def type_name(annotation: Any) -> str:
    """The TOML-facing name of a field's type (``None`` means the key is left out)."""
    annotation = _without_none(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(arg) for arg in args)
    if origin in (list, tuple, Sequence):
        return "array of " + type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args if arg is not type(None))
    if annotation is SecretStr:
        return "secret string"
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return "path"
    if annotation in SCALARS:
        return SCALARS[annotation]
    return str(getattr(annotation, "__name__", annotation))


def toml_value(value: Any) -> str:
    """``value`` as TOML writes it (inline)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | pathlib.PurePath):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _bounds(field: FieldInfo) -> str:
    found = []
    for item in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(item, annotated_types.BaseMetadata) and hasattr(item, attr):
                found.append(f"{sign} {getattr(item, attr)!r}")
    return ", ".join(found)


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return UNSET
    return HIDDEN if is_secret(field) else toml_value(value)


@contextlib.contextmanager
def _only(name: str, names: Sequence[str]) -> Iterator[None]:
    """Temporarily set ``name`` (to "1") and none of the other ``names`` in ``os.environ``."""
    saved = {other: os.environ.pop(other) for other in names if other in os.environ}
    os.environ[name] = "1"
    try:
        yield
    finally:
        os.environ.pop(name)
        os.environ.update(saved)


def _leaf_paths(found: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in found.items():
        is_table = isinstance(value, Mapping)
        yield from _leaf_paths(value, f"{prefix}{key}.") if is_table else [prefix + key]


def legacy_names() -> dict[str, str]:
    """The seed's environment names, by the dotted key each sets: the names are read from
    ``SeedEnvSource``'s source, and each is set alone to see where ``SeedEnvSource`` puts it."""
    code = inspect.getsource(settings_mod.SeedEnvSource.__call__)
    names = sorted(set(re.findall(r"""env\.get\(["']([A-Z_]+)["']\)""", code)))
    if not names:
        raise RuntimeError("found no environment names in settings.SeedEnvSource")
    mapping: dict[str, str] = {}
    for name in names:
        with _only(name, names):
            found = settings_mod.SeedEnvSource(settings_mod.Settings)()
        mapping.update(dict.fromkeys(_leaf_paths(found), name))
    return mapping


def _env_name(path: Sequence[str], prefix: str = ENV_PREFIX) -> str:
    return prefix + "__".join(part.upper() for part in path)


def walk(
    model: type[BaseModel],
    path: tuple[str, ...] = (),
    *,
    in_list: bool = False,
    legacy: Mapping[str, str] | None = None,
    notes: dict[str, str] | None = None,
    prefix: str = ENV_PREFIX,
    described: Mapping[str, str] = NOTES,
) -> list[Entry]:
    """Every leaf field of ``model``, depth first, in declaration order; each list of tables
    leaves its note (how to write it, its default) in ``notes`` under its section."""
    legacy = legacy_names() if legacy is None else legacy
    notes = {} if notes is None else notes
    entries: list[Entry] = []
    for name, field in model.model_fields.items():
        here = (*path, name)
        nested, items = _model_of(field.annotation), _list_item_model(field.annotation)
        if nested is not None or items is not None:
            inner, section = (nested, here) if nested else (items, (*path, name + "[]"))
            if items is not None:
                notes[".".join(section)] = _list_note(".".join(here), field)
            assert inner is not None
            listed = in_list or bool(items)
            more = walk(
                inner,
                section,
                in_list=listed,
                legacy=legacy,
                notes=notes,
                prefix=prefix,
                described=described,
            )
            entries.extend(more)
            continue
        key = ".".join(here)
        env = (() if in_list else (_env_name(here, prefix),)) + (
            (legacy[key],) if key in legacy else ()
        )
        description = field.description or described.get(key, "")
        twin = name.removesuffix("_file")
        if not description and twin != name and twin in model.model_fields:
            description = f"File holding `{'.'.join((*path, twin))}` (read at start-up)."
        if is_secret(field):
            where = f"`{name}_file` or " if f"{name}_file" in model.model_fields else ""
            description += f" Secret: never shown; set it with {where}the environment."
        entries.append(
            Entry(
                key=key,
                section=".".join(path),
                type=type_name(field.annotation),
                default=_default(field),
                env=env,
                bounds=_bounds(field),
                description=description.strip(),
                secret=is_secret(field),
            )
        )
    return entries


def _list_note(table: str, field: FieldInfo) -> str:
    """How a list of tables is written, and the list used when the file declares none."""
    block: list[str] = []
    for item in field.get_default(call_default_factory=True) or []:
        dumped = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
        shown = {k: v for k, v in dumped.items() if v is not None}  # TOML has no null: unset
        block += ["", f"[[{table}]]", *(f"{k} = {toml_value(v)}" for k, v in shown.items())]
    return (
        f"An array of tables: one `[[{table}]]` per item, each key defaulting as below. In the "
        f"environment only as a whole: `{_env_name(table.split('.'))}`, a JSON array of objects."
        f" With no `[[{table}]]` at all:\n\n```toml" + "\n".join(block) + "\n```"
    )


def sections(
    model: type[BaseModel] = settings_mod.Settings, *, agent: bool = False
) -> list[Section]:
    """The model's keys grouped by TOML table, in declaration order (``agent``: the host
    agent's settings, their own file and ``BLACKSMITH_AGENT_`` names)."""
    notes: dict[str, str] = {}
    found: dict[str, Section] = {}
    entries = (
        walk(model, notes=notes, legacy={}, prefix=AGENT_PREFIX)
        if agent
        else walk(model, notes=notes)
    )
    for entry in entries:
        section = entry.section
        found.setdefault(section, Section(path=section, note=notes.get(section, "")))
        found[section].entries.append(entry)
    return list(found.values())


def _heading(path: str, *, agent: bool = False) -> str:
    if path == TOP:
        return "The host agent: top level" if agent else "Top level"
    found = f"`[[{path[:-2]}]]`" if path.endswith("[]") else f"`[{path}]`"
    return f"The host agent: {found}" if agent else found


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _cell(text: str, *, code: bool = False) -> str:
    """A table cell: pipes escaped, ``<name>`` kept visible outside code spans."""
    if not text:
        return "—"
    if code:
        return f"`{text}`".replace("|", "\\|")
    parts = text.split("`")
    parts[::2] = [re.sub(r"<(?=[A-Za-z/])", "&lt;", part) for part in parts[::2]]
    return "`".join(parts).replace("|", "\\|")


def _row(entry: Entry) -> str:
    seed = " (seed)"
    env = ", ".join(f"`{n}`" + ("" if n.startswith(ENV_PREFIX) else seed) for n in entry.env)
    plain = entry.default in (UNSET, HIDDEN)
    key, default = _cell(entry.key, code=True), _cell(entry.default, code=not plain)
    cells = (key, _cell(entry.type), default, env or "—", _cell(entry.bounds))
    return "| " + " | ".join((*cells, _cell(entry.description))) + " |"


HEADER = f"""# Configuration reference

<!-- Generated from the settings model by `{REGENERATE}`.
     Do not edit: `make lint` fails when this file is stale. -->

Lowest to highest precedence: these defaults, the TOML file (`blacksmith-mini up --config FILE`,
e.g. [config/blacksmith.example.toml](../config/blacksmith.example.toml)), the seed's names
(marked *seed*), the `BLACKSMITH_*` variables, the flags of `blacksmith-mini up`.

- **Environment:** `BLACKSMITH_` + the key's path in upper case joined by `__`
  (`BLACKSMITH_VM__FIRECRACKER__BOOT_TIMEOUT`); case-insensitive; arrays as JSON
  (`BLACKSMITH_GITHUB__REPOSITORIES='["acme/app"]'`).
- **Unset** means the key is left out (TOML has no null). **Secrets** are never shown, logged or
  stored; each can also be read from a file (`*_file`), which keeps it out of the environment.
- Bounds are checked at load time, and so are a few rules of their own (pool names, `vcpus` at
  most 32, `reboot=k` in `boot_args`, ...); the error says how to fix the value.
- **The host agent** (`blacksmith-mini agent`, many hosts) has settings of its own, at the end:
  its own TOML file (`--config`), `BLACKSMITH_AGENT_*` variables and flags; no database URL
  and no GitHub credential among them.
"""


def render(model: type[BaseModel] = settings_mod.Settings) -> str:
    """The whole reference as Markdown: the control plane's settings, then the agent's
    (``blacksmith-mini agent --config agent.toml``) when ``model`` is the real one."""
    parts = [(section, False) for section in sections(model)]
    if model is settings_mod.Settings:
        agent = sections(agent_settings.AgentSettings, agent=True)
        parts += [(section, True) for section in agent]
    lines = [HEADER]
    for section, of_agent in parts:
        heading = _heading(section.path, agent=of_agent)
        lines.append(f"- [{heading}](#{_anchor(heading)})")
    for section, of_agent in parts:
        lines += ["", f"## {_heading(section.path, agent=of_agent)}", ""]
        if section.note:
            lines += [section.note, ""]
        lines += [
            "| key | type | default | environment | bounds | description |",
            "|---|---|---|---|---|---|",
            *(_row(entry) for entry in section.entries),
        ]
    return "\n".join(lines) + "\n"


def check(output: pathlib.Path) -> str | None:
    """``None`` when ``output`` is current, else what is wrong and how to fix it."""
    try:
        current = output.read_text()
    except OSError as exc:
        return f"{output} cannot be read ({exc.strerror}): generate it with `{REGENERATE}`"
    expected = render()
    if current == expected:
        return None
    diff = difflib.unified_diff(current.splitlines(), expected.splitlines(), lineterm="", n=1)
    return (
        f"{output} is stale (it differs from the settings model): regenerate it with "
        f"`{REGENERATE}`. First differences (- file, + model):\n" + "\n".join(list(diff)[2:30])
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference, or with ``--check`` exit 1 when the written one is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="Exit 1 if the file is stale.")
    args = parser.parse_args(argv)
    if args.check:
        problem = check(args.output)
        sys.stderr.write(f"error: {problem}\n" if problem else "")
        return 1 if problem else 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render())
    sys.stdout.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
