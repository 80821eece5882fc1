"""The client's own archive step alone: ``@actions/cache``'s tar + zstd commands, no service.

``saveCache`` runs ``tar --posix -cf cache.tzst --exclude cache.tzst -P -C <workspace>
--files-from manifest.txt --use-compress-program zstdmt`` (``internal/tar.ts``, GNU tar with
zstd, as logged by the client's ``[command]`` line) before it uploads, and ``restoreCache``
``tar -xf cache.tzst -P -C <workspace> --use-compress-program unzstd`` after it downloads.
``archive_alone`` times the same two commands on the same tree: the share of a save or a
restore that is the client's and the machine's, whatever the service does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Protocol


class Timings(Protocol):
    seconds: list[float]
    rss_growth_kb: list[int]
    service_cpu: list[float]
    client_cpu: list[float]


def archive_alone(
    place: Path, target: Path, *, pack: Timings, unpack: Timings, repeat: int
) -> None:
    """Packs ``place/work/data`` and unpacks it into ``target/work``, ``repeat`` times each.

    Records each run's seconds and CPU (tar, zstd) in ``pack`` / ``unpack``.
    """
    scratch = place / "archive-alone"
    for phase, work in ((pack, place / "work"), (unpack, target / "work")):
        for _ in range(repeat):
            scratch.mkdir(exist_ok=True)
            (scratch / "manifest.txt").write_text("data\n")
            if phase is pack:
                arguments = ["--posix", "-cf", "cache.tzst", "--exclude", "cache.tzst", "-P", "-C"]
                arguments += [str(work), "--files-from", "manifest.txt"]
                program = "zstdmt"
            else:
                shutil.rmtree(work / "data", ignore_errors=True)
                arguments, program = ["-xf", "cache.tzst", "-P", "-C", str(work)], "unzstd"
            command = ["tar", *arguments, "--use-compress-program", program]
            os.sync()
            before, started = os.times(), time.perf_counter()
            subprocess.run(command, cwd=scratch, check=True)
            phase.seconds.append(time.perf_counter() - started)
            after = os.times()
            phase.client_cpu.append(
                after.children_user
                + after.children_system
                - before.children_user
                - before.children_system
            )
            phase.rss_growth_kb.append(0)
            phase.service_cpu.append(0.0)
    shutil.rmtree(scratch)
