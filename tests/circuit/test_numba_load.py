"""The numba kernels load on a read-only install with no writable home (numba's ``cache=True`` would refuse)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kirchhoffnet.circuit import _numba_load
from kirchhoffnet.errors import ConfigError

numba = pytest.importorskip("numba")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv to drop file-access rights"
)
def test_a_read_only_install_without_a_home_caches_in_a_private_temporary_directory(tmp_path: Path) -> None:
    """Reproduces the crash: the package copied read-only, run by root without its right to write anywhere."""
    install, temp = tmp_path / "install", tmp_path / "tmp"
    shutil.copytree(SRC, install, ignore=shutil.ignore_patterns("__pycache__"))
    temp.mkdir()
    for path in [install, *install.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    code = (
        "import numba\n"
        "from kirchhoffnet.circuit import _fused, _small\n"
        "assert _fused.numba_kernel() is not None and _small.small_kernel() is not None\n"
        "print(numba.config.CACHE_DIR)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(install), TMPDIR=str(temp), PYTHONPATH=str(install), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(temp / f"kirchhoffnet-numba-{os.getuid()}")


def _no_cache_then(monkeypatch: pytest.MonkeyPatch, cache_dir: str) -> list[str]:
    """The first import fails as numba's does without a cache; later ones succeed. Returns the imports made."""
    calls: list[str] = []

    def import_module(name: str) -> object:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("cannot cache function '_sigma': no locator available for file 'x.py'")
        return sys.modules[__name__]

    monkeypatch.setattr(_numba_load.importlib, "import_module", import_module)
    monkeypatch.setattr(numba.config, "CACHE_DIR", cache_dir)
    return calls


def test_without_a_cache_the_import_is_retried_with_the_private_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_numba_load.tempfile, "tempdir", str(tmp_path))
    calls = _no_cache_then(monkeypatch, "")
    assert _numba_load.load_kernels("_numba_kcl") is sys.modules[__name__]
    assert calls == ["kirchhoffnet.circuit._numba_kcl"] * 2
    assert str(tmp_path / f"kirchhoffnet-numba-{os.getuid()}") == numba.config.CACHE_DIR


def test_a_users_unwritable_numba_cache_dir_is_reported_not_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cache_then(monkeypatch, "/proc/no-such-dir")
    with pytest.raises(ConfigError, match=r"NUMBA_CACHE_DIR=/proc/no-such-dir is not a writable directory"):
        _numba_load.load_kernels("_numba_kcl")
    assert numba.config.CACHE_DIR == "/proc/no-such-dir"


def test_other_runtime_errors_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str) -> object:
        raise RuntimeError("something else")

    monkeypatch.setattr(_numba_load.importlib, "import_module", import_module)
    with pytest.raises(RuntimeError, match="something else"):
        _numba_load.load_kernels("_numba_kcl")


@pytest.mark.parametrize("squatted", ["link", "open"])
def test_a_shared_name_someone_else_could_write_is_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, squatted: str
) -> None:
    monkeypatch.setattr(_numba_load.tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"kirchhoffnet-numba-{os.getuid()}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if squatted == "link":
        shared.symlink_to(elsewhere)
    else:
        shared.mkdir()
        shared.chmod(0o777)
    chosen = _numba_load.private_cache_dir()
    assert chosen.parent == tmp_path and chosen.name.startswith("kirchhoffnet-numba-") and chosen != shared
    assert chosen.stat().st_mode & 0o777 == 0o700


def test_no_writable_temporary_directory_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_numba_load.tempfile, "tempdir", str(tmp_path / "missing" / "deeper"))
    with pytest.raises(ConfigError, match="set NUMBA_CACHE_DIR"):
        _numba_load.private_cache_dir()
