"""Importing the numba kernel modules wherever the package is installed.

The kernels are compiled with ``cache=True`` (a cold compile costs seconds, a cached one milliseconds), and
numba refuses to even define such a function, with a RuntimeError at import, when it finds no writable cache:
neither the package's own ``__pycache__`` (a read-only install: a container's site-packages, a shared software
tree) nor the user's cache directory (an unwritable or absent home). Then the cache moves to a private
directory under the system's temporary directory. A ``NUMBA_CACHE_DIR`` set by the user is never overridden.
"""

from __future__ import annotations

import importlib
import os
import stat
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from kirchhoffnet.errors import ConfigError

_NO_CACHE = "cannot cache function"  # numba's RuntimeError when no cache locator applies


def load_kernels(name: str) -> ModuleType | None:
    """``kirchhoffnet.circuit.<name>``, or ``None`` when numba cannot be imported.

    Raises:
        ConfigError: numba has no writable cache directory, not even a private temporary one.
    """
    module = f"kirchhoffnet.circuit.{name}"
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
    except RuntimeError as exc:
        if _NO_CACHE not in str(exc):
            raise
        reason = str(exc)
    from numba.core import config as numba_config

    config: Any = numba_config  # its settings are set from the environment at run time; numba reads them on each use
    if config.CACHE_DIR:
        raise ConfigError(f"NUMBA_CACHE_DIR={config.CACHE_DIR} is not a writable directory ({reason})")
    config.CACHE_DIR = str(private_cache_dir())
    return importlib.import_module(module)


def private_cache_dir() -> Path:
    """A directory under the temporary directory that only this user can write, created on first use.

    The shared name is taken only when it is a real directory owned by this user and closed to others (in a
    world-writable /tmp another user could have created it first, or left a link there); else a fresh one.
    """
    try:
        shared = Path(tempfile.gettempdir()) / f"kirchhoffnet-numba-{os.getuid()}"
        shared.mkdir(mode=0o700, exist_ok=True)
        info = shared.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return shared
        return Path(tempfile.mkdtemp(prefix="kirchhoffnet-numba-"))
    except OSError as exc:
        raise ConfigError(
            f"numba has no writable directory to cache its kernels ({exc}); set NUMBA_CACHE_DIR to one"
        ) from None
