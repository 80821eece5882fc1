"""The build steps of ``image build``: one command each, with what it is for, and helpers."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True, kw_only=True)
class Step:
    """One command of the build, with what it is for."""

    what: str
    argv: tuple[str, ...]
    cwd: Path | None = None
    stdin_text: str | None = None


def in_chroot(tree: Path, *argv: str) -> tuple[str, ...]:
    return ("chroot", str(tree), "/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", *argv)


def write(what: str, path: Path, *, text: str) -> Step:
    return Step(what=what, argv=("tee", str(path)), stdin_text=text)


def link(what: str, target: str, *, link: Path) -> Step:
    return Step(what=what, argv=("ln", "-sfn", target, str(link)))
