"""The guest agent gives each VM its own identity and keeps the runner's groups.

The REAL agent (``images/guest/blacksmith-agent.py``) runs against :class:`MmdsV2` on loopback
with ``--root`` pointing at a fake guest tree made like debootstrap leaves it (the build host's
resolv.conf, hostname and SSH host keys), so nothing on this machine changes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker import mmds
from image.guest_support import (
    ACK,
    RUNNER_LINES,
    MmdsV2,
    ensure_runner_user,
    jit_config,
    relay_console,
    stand_in_run_sh,
)

AGENT = Path(__file__).resolve().parents[2] / "images" / "guest" / "blacksmith-agent.py"


def guest_tree(root: Path) -> Path:
    """What debootstrap + openssh-server leave: the build host's identity."""
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/hostname").write_text("buildhost\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tbuildhost\n")
    (root / "etc/resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
    (root / "etc/machine-id").write_text("")
    for kind in ("rsa", "ed25519"):
        (root / f"etc/ssh/ssh_host_{kind}_key").write_text("BUILD HOST KEY\n")
        (root / f"etc/ssh/ssh_host_{kind}_key.pub").write_text(f"ssh-{kind} BUILDHOST\n")
    return root


def runner_dir(path: Path, *, owner: int | None = None) -> Path:
    path.mkdir(mode=0o755)
    run_sh = path / "run.sh"
    run_sh.write_text(stand_in_run_sh())
    run_sh.chmod(0o755)
    if owner is not None:
        os.chown(path, owner, -1)
    return path


def boot_data(name: str, **extra: Any) -> dict[str, Any]:
    spec = port.VmSpec(
        vm_id=7,
        name=name,
        pool="default",
        labels=("self-hosted",),
        vcpus=1,
        memory_mib=256,
        jit_config=jit_config(name),
    )
    store = mmds.boot_data(
        spec,
        instance_id="bm7x" + name.replace("-", ""),
        ssh_public_key=None,
        keep_on_failure_seconds=0,
        dns_servers=("1.1.1.1", "9.9.9.9"),
    )
    data: dict[str, Any] = store["latest"]["meta-data"]["blacksmith"]
    data.update(extra)
    return data


def run_agent(
    data: dict[str, Any], *, root: Path, runner: Path, user: str = "", timeout: float = 60
) -> tuple[int, str]:
    console: list[str] = []
    with MmdsV2(data) as server:
        env = {
            **os.environ,
            "BLACKSMITH_MMDS_ADDRESS": server.address,
            "BLACKSMITH_ROOT": str(root),
            "BLACKSMITH_RUNNER_DIR": str(runner),
            "BLACKSMITH_RUNNER_USER": user,
            "BLACKSMITH_SSH_DIR": str(root / "ssh-authorized"),
            "BLACKSMITH_REBOOT_COMMAND": "none",
        }
        process = subprocess.Popen(
            [sys.executable, str(AGENT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        code = relay_console(
            process, mmds=server, sink=console, deadline=time.monotonic() + timeout
        )
    return code, "\n".join(console)


def test_boot_data_carries_dns_servers_and_a_valid_hostname() -> None:
    data = boot_data("bm-12-Ab_c")
    assert data["dns_servers"] == ["1.1.1.1", "9.9.9.9"]
    assert data["hostname"] == "bm-12-ab-c"
    assert (
        "dns_servers"
        in mmds.public_remainder({"latest": {"meta-data": {"blacksmith": data}}})["latest"][
            "meta-data"
        ]["blacksmith"]
    )
    long = mmds.guest_hostname("bm-" + "x" * 80 + "-tail")
    assert len(long) <= 63 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", long)
    assert mmds.guest_hostname("--__--", vm_id=3) == "bm-vm-3"
    assert mmds.guest_hostname("bm-" + "y" * 59 + "-z") == "bm-" + "y" * 59  # no trailing '-'


def test_agent_writes_resolv_conf_hostname_host_keys_and_machine_id(tmp_path: Path) -> None:
    root = guest_tree(tmp_path / "guest")
    code, console = run_agent(boot_data("bm-7-q1w2"), root=root, runner=runner_dir(tmp_path / "r"))
    assert code == 0, console
    resolv = root / "etc/resolv.conf"
    assert not resolv.is_symlink()
    assert re.findall(r"^nameserver (\S+)$", resolv.read_text(), re.M) == ["1.1.1.1", "9.9.9.9"]
    assert (root / "etc/hostname").read_text() == "bm-7-q1w2\n"
    hosts = (root / "etc/hosts").read_text()
    assert "127.0.1.1\tbm-7-q1w2" in hosts and "buildhost" not in hosts
    assert "127.0.0.1\tlocalhost" in hosts
    machine_id = (root / "etc/machine-id").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
    if shutil.which("ssh-keygen"):
        key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text()
        assert key.startswith("ssh-ed25519 ") and "BUILDHOST" not in key
        assert "BUILD HOST" not in (root / "etc/ssh/ssh_host_rsa_key").read_text()
    assert ACK in console and "hostname: bm-7-q1w2" in console
    for line in RUNNER_LINES:
        assert line in console
    assert data_secret_not_in(console)


def data_secret_not_in(console: str) -> bool:
    return "private-" not in console and jit_config("bm-7-q1w2") not in console


def test_two_guests_from_one_image_differ(tmp_path: Path) -> None:
    seen = []
    for name in ("bm-1-aaaa", "bm-2-bbbb"):
        root = guest_tree(tmp_path / name)
        code, console = run_agent(
            boot_data(name), root=root, runner=runner_dir(tmp_path / f"r{name}")
        )
        assert code == 0, console
        keys = sorted((root / "etc/ssh").glob("ssh_host_*_key.pub"))
        seen.append(
            (
                (root / "etc/hostname").read_text(),
                (root / "etc/machine-id").read_text(),
                tuple(k.read_text() for k in keys),
            )
        )
    (host_a, id_a, keys_a), (host_b, id_b, keys_b) = seen
    assert host_a != host_b and id_a != id_b
    if shutil.which("ssh-keygen"):
        assert keys_a and keys_b and set(keys_a).isdisjoint(keys_b)


def test_runner_self_update_is_disabled(tmp_path: Path) -> None:
    runner = runner_dir(tmp_path / "r")
    code, console = run_agent(
        boot_data("bm-7-upd8"), root=guest_tree(tmp_path / "g"), runner=runner
    )
    assert code == 0, console
    args = (runner / "args").read_text().splitlines()
    assert args[0] == "--jitconfig" and "--disableupdate" not in args
    files = json.loads(base64.b64decode(args[1]))
    settings = json.loads(base64.b64decode(files[".runner"]))
    assert settings["disableUpdate"] is True and settings["agentName"] == "bm-7-upd8"
    assert (
        files[".credentials_rsaparams"]
        == json.loads(base64.b64decode(jit_config("bm-7-upd8")))[".credentials_rsaparams"]
    )
    assert "ACTIONS_RUNNER_INPUT_DISABLEUPDATE=true" in (runner / "env").read_text()
    assert "BLACKSMITH_" not in (runner / "env").read_text()


def test_runner_keeps_its_supplementary_groups(tmp_path: Path) -> None:
    """As root the agent starts the runner as the runner user WITH its groups (docker)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the agent switches to an unprivileged runner user")
    user = ensure_runner_user()
    docker_gid = int(
        subprocess.run(
            ["getent", "group", "docker"], capture_output=True, text=True, check=True
        ).stdout.split(":")[2]
    )
    # A runner directory the user can reach (pytest's tmp is 0700), as /opt/runner in a guest.
    base = Path(tempfile.mkdtemp(prefix="bm-runner-"))
    base.chmod(0o755)
    try:
        runner = runner_dir(base / "runner", owner=user.pw_uid)
        code, console = run_agent(
            boot_data("bm-7-grp1"),
            root=guest_tree(tmp_path / "g"),
            runner=runner,
            user=user.pw_name,
        )
        uid, groups_text = (runner / "id").read_text(), (runner / "groups").read_text()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert code == 0, console
    assert int(uid) == user.pw_uid
    groups = {int(g) for g in groups_text.split()}
    assert docker_gid in groups and 0 not in groups, groups
    assert groups == set(os.getgrouplist(user.pw_name, user.pw_gid))
