"""The built wheel holds what an install needs: the package, its migrations, the dashboard
and the guest image sources; installed on its own, it serves the dashboard and finds images."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def build(out: pathlib.Path, *, dashboard: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLACKSMITH_WHEEL_DASHBOARD": str(dashboard)}
    return subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    made = tmp_path_factory.mktemp("wheel")
    dashboard = made / "dashboard"
    dashboard.mkdir()
    (dashboard / "index.html").write_text("<title>built dashboard</title>")
    (dashboard / "_next").mkdir()
    (dashboard / "_next" / "app.js").write_text("console.log(1)")
    done = build(made / "dist", dashboard=dashboard)
    assert done.returncode == 0, done.stderr
    (found,) = (made / "dist").glob("blacksmith_mini-*.whl")
    return found


def test_the_wheel_holds_the_dashboard_images_and_migrations(wheel: pathlib.Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "blacksmith_mini/_dashboard/index.html" in names
    assert "blacksmith_mini/_dashboard/_next/app.js" in names
    images = {name for name in names if name.startswith("blacksmith_mini/_images/")}
    checkout = {
        "blacksmith_mini/_images/" + str(path.relative_to(ROOT / "images"))
        for path in (ROOT / "images").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert checkout and checkout <= images
    assert any("/migrations/" in name for name in names)
    assert not any(name.startswith(("frontend/", "tests/", "hatch_build")) for name in names)


def test_a_wheel_without_a_built_dashboard_is_refused_with_the_fix(tmp_path: pathlib.Path) -> None:
    done = build(tmp_path / "dist", dashboard=tmp_path / "not-built")
    assert done.returncode != 0
    assert "the dashboard is not built" in done.stderr
    assert "scripts/build-frontend.sh" in done.stderr


def test_installed_alone_it_finds_its_dashboard_and_images(
    wheel: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Unpacked away from the checkout (as site-packages would hold it), the package resolves
    the dashboard and the image sources to its own copies."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import blacksmith_mini.api.app as a, blacksmith_mini.vm.firecracker.image as i\n"
        "from blacksmith_mini import settings as s\n"
        "print(a.dashboard_dir(s.load(simulate=True)))\n"
        "print(i.REPO_IMAGES)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    dashboard, images = done.stdout.split()
    assert pathlib.Path(dashboard) == site / "blacksmith_mini" / "_dashboard"
    assert pathlib.Path(images) == site / "blacksmith_mini" / "_images"
    assert (pathlib.Path(images) / "guest").is_dir()
