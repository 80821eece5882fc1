"""The Firecracker VM driver: one fresh microVM per GitHub Actions job.

Entry points (import the modules; this package file stays empty so the per-VM ``supervisor``
process starts fast): ``driver.FirecrackerDriver``, ``config.FirecrackerSettings``,
``doctor.run_checks``, ``image.build_image`` and ``ssh.ssh_argv``. See docs/FIRECRACKER.md.
"""
