"""The runner patch behind the cache redirect: exact, same-length, refused when it does not fit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blacksmith_mini.vm.firecracker import image, runner_patch

RESULTS, CACHE = (
    runner_patch.user_string("ACTIONS_RESULTS_URL"),
    runner_patch.user_string("ACTIONS_CACHE_URL"),
)


def dll(*entries: bytes) -> bytes:
    """A stand-in assembly: a header, the given user strings, other bytes around them."""
    return b"MZ\x90\x00" + b"".join(b"\x07" * 33 + entry for entry in entries) + b"\x00" * 9


def test_user_strings_are_length_prefixed_utf16() -> None:
    expected = b"\x27" + "ACTIONS_RESULTS_URL".encode("utf-16-le") + b"\x00"
    assert expected == RESULTS
    assert CACHE[0] == 2 * len("ACTIONS_CACHE_URL") + 1


def test_both_names_are_renamed_in_place_and_nothing_else_moves() -> None:
    original = dll(RESULTS, CACHE, runner_patch.user_string("ACTIONS_RUNTIME_URL"))
    patched = runner_patch.patch(original)
    assert len(patched) == len(original)
    assert RESULTS not in patched and CACHE not in patched
    assert runner_patch.user_string("ACTIONS_RESULTS_ORL") in patched
    assert runner_patch.user_string("ACTIONS_CACHE_ORL") in patched
    assert runner_patch.user_string("ACTIONS_RUNTIME_URL") in patched  # untouched
    changed = [i for i, (a, b) in enumerate(zip(original, patched, strict=True)) if a != b]
    assert len(changed) == 2  # "U" -> "O" of each name: one byte of its UTF-16
    assert runner_patch.patch(patched) == patched  # patched twice: the same


@pytest.mark.parametrize(
    ("entries", "name", "count"),
    [
        ((CACHE,), "ACTIONS_RESULTS_URL", 0),  # before v2.308.0: no results URL
        ((RESULTS, RESULTS, CACHE), "ACTIONS_RESULTS_URL", 2),
        ((RESULTS,), "ACTIONS_CACHE_URL", 0),
        # the name inside another literal is not the literal
        ((RESULTS, runner_patch.user_string("ACTIONS_CACHE_URL_X")), "ACTIONS_CACHE_URL", 0),
    ],
)
def test_a_runner_the_patch_does_not_fit_is_refused_with_the_fix(
    entries: tuple[bytes, ...], name: str, count: int
) -> None:
    with pytest.raises(runner_patch.PatchError) as refused:
        runner_patch.patch(dll(*entries))
    message = str(refused.value)
    assert f"{name} appears {count} times" in message
    assert "--runner-version" in message and "v2.308.0" in message


def test_the_file_is_replaced_whole_or_left_alone(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.dll", tmp_path / "bad.dll"
    good.write_bytes(dll(RESULTS, CACHE))
    good.chmod(0o640)
    bad.write_bytes(dll(CACHE))
    runner_patch.patch_file(good)
    assert good.read_bytes() == runner_patch.patch(dll(RESULTS, CACHE))
    assert good.stat().st_mode & 0o777 == 0o640
    command = [sys.executable, "-m", runner_patch.__name__, str(bad)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "ACTIONS_RESULTS_URL appears 0 times" in done.stderr
    assert bad.read_bytes() == dll(CACHE)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.dll", "good.dll"]


def test_the_image_build_patches_the_unpacked_runner_and_installs_the_proxy(
    tmp_path: Path,
) -> None:
    steps = image.plan_build(output_dir=tmp_path, runner_version="2.335.1", jobs=2)
    whats = [step.what for step in steps]
    assert (
        whats.index("unpack runner")
        < whats.index("runner cache redirect")
        < whats.index("runner owns /opt/runner")
    )
    argv = {step.what: step.argv for step in steps}
    assert argv["runner cache redirect"][-1].endswith("opt/runner/bin/Runner.Worker.dll")
    assert argv["runner cache redirect"][1:3] == ("-m", runner_patch.__name__)
    assert argv["cache proxy"][-2].endswith("images/guest/blacksmith-cache-proxy.py")
    assert argv["cache proxy"][-1].endswith("usr/local/bin/blacksmith-cache-proxy")
