"""``kirchhoffnet`` in a subprocess, with faults injected into its atomic writes.

Usage: ``python crash_driver.py [--slow-replace S] [--kill-at-fsync N] -- <kirchhoffnet arguments>``.

- ``--slow-replace S`` sleeps S seconds before every ``os.replace``, so that a kill sent at a random
  moment often lands inside a checkpoint or metrics write (the temporary file written, not yet renamed).
- ``--kill-at-fsync N`` tears the N-th file being fsynced (truncates it to half its size, as a crash in
  the middle of writing would) and SIGKILLs the process before the rename.

Only this process is patched; the library has no test hooks.
"""

from __future__ import annotations

import argparse
import os
import signal
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-replace", type=float, default=0.0)
    parser.add_argument("--kill-at-fsync", type=int, default=0)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    replace, fsync = os.replace, os.fsync
    calls = {"fsync": 0}

    def slow_replace(src, dst, *a, **k):  # type: ignore[no-untyped-def]
        time.sleep(args.slow_replace)
        return replace(src, dst, *a, **k)

    def tearing_fsync(fd: int) -> None:
        calls["fsync"] += 1
        if calls["fsync"] == args.kill_at_fsync:
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        fsync(fd)

    if args.slow_replace:
        os.replace = slow_replace
    if args.kill_at_fsync:
        os.fsync = tearing_fsync
    from kirchhoffnet.cli.main import app

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    app(rest, prog_name="kirchhoffnet")


if __name__ == "__main__":
    main()
