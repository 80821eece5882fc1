"""Starting a VM as a clone of a template (``templates``): load its snapshot, give it its own
boot data, resume it.

The order is Firecracker's (v1.16.1): ``snapshot/load`` is the first configuring call (only
the logger and metrics before it), with the clone's own tap through ``network_overrides`` and
``clock_realtime``; the microVM comes back Paused; MMDS is not part of a snapshot, so the boot
data goes in after the load and before the resume. The clone's disk is a copy of the
template's at the path the snapshot names (``rootfs.ext4``, relative to the clone's own
directory, where its Firecracker runs). The clone keeps the template's guest address and MAC:
it runs in its own network namespace, which routes that address to the clone's own slot
(``network``). The boot data adds what makes a clone itself beyond a cold VM's: a
``generation`` (a restore), fresh ``entropy`` for the kernel's pool and the ``wall_clock``.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import api, mmds, naming, state
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.templates import Template


def boot_store(
    settings: FirecrackerSettings,
    *,
    record: state.VmRecord,
    spec: driver.VmSpec,
    clone: bool = False,
) -> dict[str, Any]:
    """A VM's MMDS store (a clone's with what a restore needs), its public remainder saved."""
    ssh_key = settings.ssh_public_key_path
    store = mmds.boot_data(
        spec,
        instance_id=record.instance_id,
        ssh_public_key=ssh_key.read_text().strip() if ssh_key else None,
        keep_on_failure_seconds=settings.keep_on_failure_minutes * 60,
        dns_servers=settings.dns_servers,
        host_ip=record.net.host_ip,
    )
    store = clone_boot_data(store) if clone else store
    record.public_mmds = mmds.public_remainder(store)
    record.save()
    return store


def clone_boot_data(store: dict[str, Any]) -> dict[str, Any]:
    """A cold VM's MMDS store with what a clone needs besides."""
    found = copy.deepcopy(store)
    data = found["latest"]["meta-data"][mmds.KEY]
    data.update(
        generation=int(time.time() * 1000), entropy=secrets.token_hex(32), wall_clock=time.time()
    )
    mmds.check_no_github_token(found)
    return found


async def restore(
    client: api.FirecrackerApi,
    *,
    settings: FirecrackerSettings,
    record: state.VmRecord,
    template: Template,
    store: dict[str, Any],
) -> None:
    """Load ``template`` into the fresh Firecracker behind ``client``, then boot data, resume."""
    await client.wait_until_ready(deadline=time.monotonic() + settings.socket_timeout)
    await client.put_logger(log_path=str(record.dir / "firecracker.log"), level=settings.log_level)
    await client.put_metrics(metrics_path=str(record.dir / "metrics.json"))
    await client.load_snapshot(
        snapshot_path=str(template.snapshot),
        mem_file_path=str(template.memory),
        network_overrides={naming.IFACE_ID: record.net.vm_tap},
        clock_realtime=True,
    )
    await client.put_mmds(store)
    await client.resume()
    record.instance_started_at = time.time()
    record.save()
