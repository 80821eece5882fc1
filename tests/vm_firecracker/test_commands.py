"""``blacksmith-mini image build`` and ``blacksmith-mini ssh VM_ID`` (``commands.register``)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from blacksmith_mini.domain import model
from blacksmith_mini.store import repository
from blacksmith_mini.vm.firecracker import commands, image, naming, proc, state, supervisor


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    for name in ("BLACKSMITH_DATA_DIR", "BLACKSMITH_DATABASE_URL", "BLACKSMITH_VM__DRIVER"):
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """The root, as in cli.py."""

    commands.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def write_config(tmp_path: Path, **firecracker: str) -> Path:
    lines = ['[vm]\ndriver = "firecracker"\n[vm.firecracker]']
    lines += [f'{key} = "{value}"' for key, value in firecracker.items()]
    path = tmp_path / "blacksmith.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_image_build_dry_run_prints_the_plan(cli: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        cli, "image", "build", "--dry-run", "--runner-version", "2.328.0", "--output-dir", str(out)
    )
    assert result.exit_code == 0, result.output
    steps = image.plan_build(output_dir=out, runner_version="2.328.0")
    assert result.output.count("\n# ") + 1 == len(steps)
    assert "debootstrap" in result.output and "actions-runner-linux-x64-2.328.0" in result.output
    assert shlex.join(steps[-1].argv) in result.output
    assert not out.exists(), "a dry run changes nothing"


def test_image_build_defaults_to_the_kernel_path_directory(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: dict[str, Any] = {}

    def fake_build(**kwargs: Any) -> tuple[Path, Path]:
        called.update(kwargs)
        return kwargs["output_dir"] / "vmlinux", kwargs["output_dir"] / "rootfs.ext4"

    monkeypatch.setattr(image, "build_image", fake_build)
    config = write_config(
        tmp_path, kernel_path=str(tmp_path / "img/vmlinux"), rootfs_path="/elsewhere/rootfs.ext4"
    )
    result = invoke(cli, "image", "build", "--runner-version", "2.328.0", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert called == {
        "output_dir": tmp_path / "img",
        "runner_version": "2.328.0",
        "kernel_version": "6.1.141",
        "ubuntu_suite": "noble",
        "rootfs_size_gib": 10,
    }
    assert f'rootfs_path = "{tmp_path / "img/rootfs.ext4"}"' in result.output


def test_image_build_failures_say_what_to_do(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_root(**kwargs: Any) -> tuple[Path, Path]:
        raise PermissionError("image build needs root (loop mounts and chroot)")

    monkeypatch.setattr(image, "build_image", not_root)
    result = CliRunner().invoke(
        cli, ["image", "build", "--runner-version", "2.328.0", "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "run it as root" in result.output
    assert invoke(cli, "image", "build").exit_code == 2  # --runner-version is required


@pytest.fixture
def running() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a VM's supervisor (the VM "runs" while it does)."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def save_record(
    data_dir: Path, *, vm_id: int, slot: int, pid: int | None, **fields: Any
) -> naming.NetLease:
    lease = naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=slot)
    name = f"bm-{vm_id}-abcdef"
    vm_dir = data_dir / "vms" / name
    state.VmRecord(
        vm_id=vm_id,
        name=name,
        instance_id=naming.instance_id(vm_id=vm_id, name=name),
        pool="default",
        labels=["self-hosted"],
        vcpus=2,
        memory_mib=512,
        state_dir=str(vm_dir),
        lease={
            "slot": lease.slot,
            "tap": lease.tap,
            "host_ip": lease.host_ip,
            "guest_ip": lease.guest_ip,
            "prefixlen": lease.prefixlen,
            "mac": lease.mac,
            "netns": None,
        },
        rootfs=str(vm_dir / "rootfs.ext4"),
        socket=str(vm_dir / "api.sock"),
        started_at=time.time(),
        supervisor_pid=pid,
        supervisor_ticks=proc.start_ticks(pid) if pid else None,
        **fields,
    ).save()
    return lease


def test_ssh_prints_the_command_for_a_recorded_vm(
    cli: typer.Typer, tmp_path: Path, running: subprocess.Popen[bytes]
) -> None:
    data_dir = tmp_path / "data"
    lease = save_record(data_dir, vm_id=7, slot=9, pid=running.pid)
    save_record(data_dir, vm_id=8, slot=10, pid=running.pid)
    config = write_config(tmp_path, ssh_private_key_path="/keys/id_ed25519")
    result = invoke(
        cli, "ssh", "7", "--print", "--config", str(config), "--data-dir", str(data_dir)
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.output)
    assert argv[0] == "ssh" and argv[-1] == f"runner@{lease.guest_ip}" == "runner@172.16.0.38"
    assert argv[argv.index("-i") + 1] == "/keys/id_ed25519"


def test_ssh_execs_ssh(
    cli: typer.Typer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    running: subprocess.Popen[bytes],
) -> None:
    data_dir = tmp_path / "data"
    lease = save_record(data_dir, vm_id=3, slot=0, pid=running.pid)
    execs: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execvp", lambda file, argv: execs.append((file, argv)))
    result = invoke(cli, "ssh", "3", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert execs and execs[0][0] == "ssh" and execs[0][1][-1] == f"runner@{lease.guest_ip}"
    assert "-i" not in execs[0][1]  # no private key configured


def test_ssh_refuses_a_recorded_vm_that_is_not_running(cli: typer.Typer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    dead = subprocess.Popen(["true"])
    dead.wait()
    save_record(data_dir, vm_id=4, slot=1, pid=dead.pid, keep_until=time.time() - 5)
    supervisor.write_json_atomic(
        data_dir / "vms" / "bm-4-abcdef" / supervisor.EXIT, {"exit_code": 0, "time": time.time()}
    )
    result = CliRunner().invoke(cli, ["ssh", "4", "--print", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "VM 4 (bm-4-abcdef) is not running any more" in result.output
    assert "exit code 0" in result.output and "it was kept until" in result.output
    assert "keep_on_failure_minutes" in result.output


async def _store_with(data_dir: Path, **vm_fields: Any) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = repository.Store(f"sqlite+aiosqlite:///{data_dir / 'blacksmith.db'}")
    await store.open()
    try:
        pool = model.Pool(
            name="default", labels=frozenset({"self-hosted"}), vcpus=2, memory_mib=512
        )
        vm = await store.create_vm(pool=pool, scope="acme/app", prefix="bm", now=time.time())
        await store.save_vm(dataclasses.replace(vm, **vm_fields))
        return vm.vm_id
    finally:
        await store.close()


def test_ssh_falls_back_to_the_store_and_explains_gone_vms(
    cli: typer.Typer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path)
    live = asyncio.run(_store_with(data_dir, state=model.VmState.IDLE, ip="172.16.0.42"))
    result = invoke(
        cli, "ssh", str(live), "--print", "--config", str(config), "--data-dir", str(data_dir)
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("runner@172.16.0.42")

    gone = asyncio.run(
        _store_with(
            data_dir,
            state=model.VmState.GONE,
            ip="172.16.0.46",
            death_reason=model.DeathReason.JOB_FINISHED,
        )
    )
    result = CliRunner().invoke(
        cli, ["ssh", str(gone), "--config", str(config), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 2
    assert "is gone (job_finished)" in result.output and "keep_on_failure_minutes" in result.output


def test_ssh_unknown_vm(cli: typer.Typer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["ssh", "99", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "no VM with id 99" in result.output
    assert not (data_dir / "blacksmith.db").exists(), "a lookup must not create a database"
