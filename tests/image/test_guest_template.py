"""The guest agent as a template VM and then as its clone: the REAL agent against loopback
MMDS says ``template-ready`` and waits (the driver snapshots it there); once the MMDS holds a
clone's boot data (put after the restore, with a new MMDS session: the old token is void) it
goes on: restored, its own identity with the clone's extras (random seed, wall clock,
said, not applied outside a real guest's root), the ack, the runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from image.guest_support import ACK, RUNNER_LINES, MmdsV2, relay_console
from image.test_guest_identity import AGENT, boot_data, guest_tree, runner_dir

TEMPLATE = "blacksmith-agent: template-ready"


def test_a_template_waits_then_becomes_the_clone_it_is_restored_as(tmp_path: Path) -> None:
    root = guest_tree(tmp_path / "guest")
    clone = boot_data(
        "bm-8-clone",
        generation=1234,
        entropy="ab" * 32,
        wall_clock=time.time() + 3600,  # the clone's clock is the template's: an hour behind
    )
    console: list[str] = []
    with MmdsV2({"template": True, "pool": "default"}) as server:
        env = {
            **os.environ,
            "BLACKSMITH_MMDS_ADDRESS": server.address,
            "BLACKSMITH_ROOT": str(root),
            "BLACKSMITH_RUNNER_DIR": str(runner_dir(tmp_path / "runner")),
            "BLACKSMITH_RUNNER_USER": "",
            "BLACKSMITH_SSH_DIR": str(root / "ssh-authorized"),
            "BLACKSMITH_REBOOT_COMMAND": "none",
        }
        process = subprocess.Popen(
            [sys.executable, str(AGENT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        for raw in process.stdout:
            console.append(raw.decode().rstrip("\n"))
            if console[-1] == TEMPLATE:
                break
        time.sleep(0.3)  # snapshotted here; nothing goes on while it waits
        assert process.poll() is None and ACK not in console
        with server.lock:
            server.tokens.clear()  # a restored VM's MMDS: a new session
            server.store["latest"]["meta-data"]["blacksmith"] = clone
        code = relay_console(process, mmds=server, sink=console, deadline=time.monotonic() + 60)
    text = "\n".join(console)
    assert code == 0, text
    assert "restored from a snapshot (generation 1234)" in text
    assert "random seed: 32 bytes (not written: not the real root)" in text
    assert re.search(r"wall clock: off by \+3[56]\d\d\.\ds \(not set: not the real root\)", text)
    assert (root / "etc/hostname").read_text() == "bm-8-clone\n"
    assert ACK in text and all(line in text for line in RUNNER_LINES)
