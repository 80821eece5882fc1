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
from blacksmith_mini.vm.firecracker import image, registry, ssh, state

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
            "https://github.com/actions/runner/releases). The image never updates it itself; "
            "`doctor` says when GitHub has a newer one.",
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
        int, typer.Option(min=1, help="Size of the (sparse) root filesystem.")
    ] = 10,
    distribution: Annotated[str | None, typer.Option(help="ubuntu (default) or debian.")] = None,
    suite: Annotated[
        str | None,
        typer.Option(help="Release for debootstrap (default: --ubuntu-suite, or bookworm)."),
    ] = None,
    mirror: Annotated[
        str | None, typer.Option(help="Package mirror (default: the distribution's own).")
    ] = None,
    packages: Annotated[
        str | None,
        typer.Option(help="Comma-separated guest packages, instead of the default set."),
    ] = None,
    runner_tarball: Annotated[
        Path | None,
        typer.Option(
            "--runner-tarball",
            exists=True,
            dir_okay=False,
            help="A local actions-runner-linux-x64-<version>.tar.gz instead of downloading it.",
        ),
    ] = None,
    runner_dependencies: Annotated[
        bool | None,
        typer.Option(
            "--runner-dependencies/--no-runner-dependencies",
            help="Run the runner's bin/installdependencies.sh in the image (default: yes).",
        ),
    ] = None,
    kernel: Annotated[
        Path | None,
        typer.Option("--kernel", exists=True, dir_okay=False, help="Use this vmlinux; build none."),
    ] = None,
    skip_kernel: Annotated[
        bool, typer.Option("--skip-kernel", help="Build the root filesystem only.")
    ] = False,
    keep_tree: Annotated[
        bool, typer.Option("--keep-tree", help="Keep the root filesystem's directory tree.")
    ] = False,
    debootstrap_cache: Annotated[
        Path | None, typer.Option(help="debootstrap --cache-dir for downloaded packages.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the steps; change nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Build the guest kernel and root filesystem (needs root, internet and build tools)."""
    fc = _load(config, None).vm.firecracker
    target = output_dir or fc.kernel_path.parent
    chosen: dict[str, object] = {  # only what was given: the defaults live in image.py
        "distribution": distribution,
        "suite": suite,
        "mirror": mirror,
        "packages": tuple(p.strip() for p in packages.split(",") if p.strip())
        if packages is not None
        else None,
        "runner_tarball": runner_tarball,
        "runner_dependencies": runner_dependencies,
        "kernel": kernel,
        "skip_kernel": skip_kernel or None,
        "keep_tree": keep_tree or None,
        "debootstrap_cache": debootstrap_cache,
    }
    options = {key: value for key, value in chosen.items() if value is not None}
    if dry_run:
        try:
            steps = image.plan_build(
                output_dir=target,
                runner_version=runner_version,
                kernel_version=kernel_version,
                ubuntu_suite=ubuntu_suite,
                rootfs_size_gib=rootfs_size_gib,
                **options,  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise _fail(str(exc)) from exc
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
        built_kernel, rootfs = image.build_image(
            output_dir=target,
            runner_version=runner_version,
            kernel_version=kernel_version,
            ubuntu_suite=ubuntu_suite,
            rootfs_size_gib=rootfs_size_gib,
            **options,
        )
    except PermissionError as exc:
        raise _fail(f"{exc}: run it as root (sudo)") from exc
    except ValueError as exc:
        raise _fail(str(exc)) from exc
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
    typer.echo(f"kernel: {built_kernel or '(not built)'}\nrootfs: {rootfs}")
    typer.echo(f"manifest: {image.manifest_path(rootfs)}")
    kernel_path = built_kernel or fc.kernel_path
    if (kernel_path, rootfs) != (fc.kernel_path, fc.rootfs_path):
        typer.echo(
            "Point the driver at them:\n[vm.firecracker]\n"
            f'kernel_path = "{kernel_path}"\nrootfs_path = "{rootfs}"'
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
            try:  # running, or kept after a failed job: reachable; exited: say so
                return ssh.guest_address(record, alive=registry.vm_alive(record))
            except ssh.NotReachable as exc:
                raise LookupFailed(str(exc)) from exc
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
