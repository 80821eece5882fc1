"""The Firecracker driver's commands: ``blacksmith-mini image build`` and ``blacksmith-mini ssh``.

``cli.py`` mounts them with :func:`register`. ``image build`` runs :func:`image.build_image`
(``--dry-run`` prints its steps instead). ``ssh VM_ID`` finds the VM's guest address, first in the
driver's records under ``<data_dir>/vms/`` (live VMs), then in the store, and replaces itself
with ``ssh runner@<guest ip>`` (``--print`` prints that command line instead).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.vm.firecracker import image, ssh, state

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="State directory (default: from settings).")
]


class LookupFailed(Exception):
    """The VM has no address to ssh into; the text says why."""


def register(app: typer.Typer) -> None:
    """Add ``image build`` and ``ssh`` to the ``blacksmith-mini`` command."""
    image_app = typer.Typer(
        help="Guest images for the Firecracker driver.", no_args_is_help=True, add_completion=False
    )
    image_app.command("build")(image_build)
    app.add_typer(image_app, name="image")
    app.command("ssh")(ssh_command)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _load(config: Path | None, data_dir: Path | None) -> settings_mod.Settings:
    try:
        return settings_mod.load(config, data_dir=data_dir)
    except settings_mod.ConfigError as exc:
        raise _fail(str(exc)) from exc
    except ValueError as exc:
        raise _fail(f"invalid settings: {exc}") from exc


# -- image build ---------------------------------------------------------------------------


def image_build(
    runner_version: Annotated[
        str,
        typer.Option(
            "--runner-version",
            help="GitHub Actions runner version to install, e.g. 2.328.0 (see "
            "https://github.com/actions/runner/releases).",
        ),
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Where vmlinux and rootfs.ext4 go (default: the directory of "
            "vm.firecracker.kernel_path).",
        ),
    ] = None,
    kernel_version: Annotated[str, typer.Option(help="kernel.org version.")] = "6.1.141",
    ubuntu_suite: Annotated[str, typer.Option(help="Ubuntu release for debootstrap.")] = "noble",
    rootfs_size_gib: Annotated[
        int, typer.Option(min=2, help="Size of the (sparse) root filesystem.")
    ] = 10,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the steps; change nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Build the guest kernel and root filesystem (needs root, internet and build tools)."""
    fc = _load(config, None).vm.firecracker
    target = output_dir or fc.kernel_path.parent
    if dry_run:
        steps = image.plan_build(
            output_dir=target,
            runner_version=runner_version,
            kernel_version=kernel_version,
            ubuntu_suite=ubuntu_suite,
            rootfs_size_gib=rootfs_size_gib,
        )
        for number, step in enumerate(steps, 1):
            typer.echo(f"# {number}. {step.what}")
            line = shlex.join(step.argv)
            if step.cwd is not None:
                line = f"(cd {shlex.quote(str(step.cwd))} && {line})"
            if step.stdin_text is not None:
                line += "  # with a script on stdin"
            typer.echo(line)
        return
    try:
        kernel, rootfs = image.build_image(
            output_dir=target,
            runner_version=runner_version,
            kernel_version=kernel_version,
            ubuntu_suite=ubuntu_suite,
            rootfs_size_gib=rootfs_size_gib,
        )
    except PermissionError as exc:
        raise _fail(f"{exc}: run it as root (sudo)") from exc
    except subprocess.CalledProcessError as exc:
        raise _fail(
            f"build step failed (exit {exc.returncode}): {shlex.join(map(str, exc.cmd))}; "
            "see its output above, and `--dry-run` for every step"
        ) from exc
    except FileNotFoundError as exc:
        raise _fail(
            f"{exc.filename} not found: install debootstrap e2fsprogs curl make gcc flex bison "
            "bc libelf-dev libssl-dev"
        ) from exc
    typer.echo(f"kernel: {kernel}\nrootfs: {rootfs}")
    if (kernel, rootfs) != (fc.kernel_path, fc.rootfs_path):
        typer.echo(
            "Point the driver at them:\n[vm.firecracker]\n"
            f'kernel_path = "{kernel}"\nrootfs_path = "{rootfs}"'
        )


# -- ssh -----------------------------------------------------------------------------------


def ssh_command(
    vm_id: Annotated[int, typer.Argument(min=1, help="The VM's id (as in /api/vms).")],
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the ssh command line instead of running it.")
    ] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Open a shell as `runner` in a Firecracker VM (see keep_on_failure_minutes)."""
    settings = _load(config, data_dir)
    try:
        guest_ip = find_guest_ip(settings, vm_id)
    except LookupFailed as exc:
        raise _fail(str(exc)) from exc
    argv = ssh.ssh_argv(settings=settings.vm.firecracker, guest_ip=guest_ip)
    if print_only:
        typer.echo(shlex.join(argv))
        return
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - an argument list, never a shell
    except OSError as exc:
        raise _fail(f"cannot run {argv[0]}: {exc.strerror}; install openssh-client") from exc


def find_guest_ip(settings: settings_mod.Settings, vm_id: int) -> str:
    """The guest address of VM ``vm_id``; raises LookupFailed saying why there is none."""
    for record in _records(settings.data_dir / "vms"):
        if record.vm_id == vm_id:
            return record.net.guest_ip
    found = asyncio.run(_from_store(settings, vm_id))
    if found is None:
        raise LookupFailed(
            f"no VM with id {vm_id} under {settings.data_dir} (check --data-dir / --config, "
            "and the id in /api/vms)"
        )
    status, ip, reason = found
    if status == "gone":
        raise LookupFailed(
            f"VM {vm_id} is gone ({reason or 'ended'}); to keep VMs whose job failed, set "
            "[vm.firecracker] keep_on_failure_minutes"
        )
    if settings.vm.driver != "firecracker" or not ip:
        raise LookupFailed(
            f'VM {vm_id} has no guest address: ssh needs vm.driver = "firecracker" (the local '
            "driver runs runners as host processes)"
        )
    return ip


def _records(vms_dir: Path) -> list[state.VmRecord]:
    if not vms_dir.is_dir():
        return []
    found = (state.VmRecord.load(entry) for entry in sorted(vms_dir.iterdir()))
    return [record for record in found if record is not None]


async def _from_store(
    settings: settings_mod.Settings, vm_id: int
) -> tuple[str, str | None, str | None] | None:
    """(status, ip, death reason) of the VM from the store; None if unknown or no store."""
    if settings.database_url is None and not (settings.data_dir / "blacksmith.db").is_file():
        return None  # never create a database just to look something up
    from blacksmith_mini.store import repository

    store = repository.Store(settings.resolved_database_url())
    try:
        vm = await store.vm(vm_id)
    except Exception as exc:  # an unreachable or unmigrated store
        raise LookupFailed(f"cannot read the store ({type(exc).__name__}: {exc})") from exc
    finally:
        await store.close()
    if vm is None:
        return None
    reason = vm.death_reason.value if vm.death_reason else None
    return vm.state.value, vm.ip, reason
