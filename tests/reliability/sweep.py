"""The hostile sweep: every leaf command against generated hostile cases, each in a forked child.

Usage (from the repository root)::

    PYTHONPATH=src OMP_NUM_THREADS=1 python -m tests.reliability.sweep --cases 10000 --seed 1 --out /tmp/fuzz-sweep

kirchhoffnet, torch and the CLI are imported once; each case forks a child that enters its own
sandbox, sets resource limits, applies its injected faults (``faults.py``) and runs the console
script's entry point in-process. The parent bounds the wall time, reads the exit status and
classifies the outcome (``classify.py``). ``--only N`` reruns one case (a reproducer).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .cases import Case, make_case
from .classify import FAILURES, PROGRESS, classify, json_files, snapshot, touched
from .faults import inject
from .hostile import DIFFUSION_BASES, FASHION_MNIST, TRAINING_BASES, dump

REPO = Path(__file__).resolve().parents[2]
OUTPUT_CAP = 200_000  # bytes kept of a child's stdout and stderr (head and tail)
PROGRESS_S = 2  # the children's progress-line interval: long work that is alive shows it within the bound


def entry_point() -> Any:
    """The ``kirchhoffnet`` console script's target, read from pyproject.toml (so a wrapper is honoured)."""
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["kirchhoffnet"]
    module, _, name = target.partition(":")
    imported = __import__(module, fromlist=[name])
    return getattr(imported, name)


def _run_in_child(args: list[str]) -> int:
    """What the console script does: run the entry point; an uncaught exception prints its traceback."""
    sys.argv = ["kirchhoffnet", *args]
    try:
        main = entry_point()
        if hasattr(main, "registered_commands") or hasattr(main, "main"):
            main(args, prog_name="kirchhoffnet")
        else:
            main()
        return 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


@dataclass
class Child:
    pid: int
    case: Case | None
    root: Path
    started: float
    fds: dict[int, str]
    output: dict[str, bytearray] = field(default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()})
    before: dict[str, Any] = field(default_factory=dict)
    results_before: dict[str, tuple[int, int]] = field(default_factory=dict)
    progress_at: list[float] = field(default_factory=list)  # when stderr showed progress lines


def fork_child(
    args: list[str],
    root: Path,
    cwd: Path,
    limits: dict[str, int] | None,
    case: Case | None,
    target: Callable[[list[str]], int] = _run_in_child,
) -> Child:
    """Fork a child that runs ``target(args)`` (the CLI) in ``cwd`` with its output on pipes (not
    files: RLIMIT_FSIZE would cut them)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.setsid()  # its own process group: a hang is killed with everything it started
            faulthandler.disable()  # pytest's dumps go to its own stderr, not the child's
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, err_r, out_w, err_w, devnull):
                os.close(fd)
            # fresh streams on fds 1 and 2 (under pytest, sys.stderr is a capture object, not fd 2)
            sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
            os.chdir(cwd)
            os.environ.update(TMPDIR=str(root / "tmp"), MPLBACKEND="Agg", COLUMNS="80")
            os.environ["KIRCHHOFFNET_PROGRESS_S"] = str(PROGRESS_S)
            os.environ.pop("KIRCHHOFFNET_NGSPICE", None)
            if case is not None and case.fake_ngspice:
                os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"
            import tempfile

            tempfile.tempdir = None
            if limits:
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
                resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 5))
            if case is not None and case.fault:
                inject(case.fault, cwd)
            code = target(args)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(out_w)
    os.close(err_w)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
    return Child(pid, case, root, time.monotonic(), {out_r: "stdout", err_r: "stderr"})


def _drain(children: list[Child], wait_s: float) -> None:
    fds = {fd: child for child in children for fd in child.fds}
    if not fds:
        time.sleep(wait_s)
        return
    ready, _, _ = select.select(list(fds), [], [], wait_s)
    for fd in ready:
        child = fds[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not data:
            os.close(fd)
            del child.fds[fd]
            continue
        if child.fds[fd] == "stderr" and PROGRESS.search(data.decode(errors="replace")):
            child.progress_at = [*child.progress_at[-1:], time.monotonic()]
        buffer = child.output[child.fds[fd]]
        buffer += data
        if len(buffer) > OUTPUT_CAP:  # keep the head and the tail: an error line comes last
            del buffer[OUTPUT_CAP // 2 : len(buffer) - OUTPUT_CAP // 2]


def _finish(child: Child, timeout_s: float) -> tuple[int | None, str]:
    """(wait status or None while running, how it was stopped): "" if it ended by itself; killed at the
    wall-clock bound, "progressing" if its progress lines kept coming up to then, else "silent"."""
    pid, status = os.waitpid(child.pid, os.WNOHANG)
    if pid:
        return status, ""
    now = time.monotonic()
    if now - child.started > timeout_s:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        alive = len(child.progress_at) == 2 and now - child.progress_at[-1] <= 2 * PROGRESS_S + 1
        return os.waitpid(child.pid, 0)[1], "progressing" if alive else "silent"
    return None, ""


def _drain_rest(child: Child, grace_s: float = 2.0) -> None:
    """Read what the ended child left in its pipes (a grandchild holding them open gets ``grace_s``)."""
    deadline = time.monotonic() + grace_s
    while child.fds and time.monotonic() < deadline:
        _drain([child], 0.05)


def _close(child: Child) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # whatever it started and left running
    for fd in child.fds:
        os.close(fd)
    child.fds.clear()


def build_bases(cache: Path, timeout_s: float = 300.0) -> Path:
    """Train the tiny base runs once (and evaluate a ring run for `diffusion compare`)."""
    marker = cache / ".complete"
    if marker.is_file():
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    (cache / "tmp").mkdir(parents=True)
    jobs: list[list[str]] = []
    for name, config in TRAINING_BASES.items():
        if name == "cls" and not FASHION_MNIST.is_dir():
            continue
        (cache / f"{name}.yaml").write_text(dump(config))
        jobs.append(["train", f"{name}.yaml", "--out", name, "--no-progress"])
    for name, config in DIFFUSION_BASES.items():
        (cache / f"{name}.yaml").write_text(dump(config))
        jobs.append(["train", f"{name}.yaml", "--out", name, "--no-progress"])
    _run_plain(jobs, cache, timeout_s)
    shutil.copytree(cache / "ring", cache / "ring-eval")
    _run_plain([["diffusion", "evaluate", "ring-eval"]], cache, timeout_s)
    marker.write_text("ok\n")
    return cache


def run_one(
    args: list[str],
    root: Path,
    cwd: Path,
    timeout_s: float,
    limits: dict[str, int] | None = None,
    target: Callable[[list[str]], int] = _run_in_child,
) -> tuple[int, str, str, str]:
    """Run one child to its end: (wait status, how it was stopped (see :func:`_finish`), stdout, stderr)."""
    child = fork_child(args, root, cwd, limits, None, target)
    while (result := _finish(child, timeout_s))[0] is None:
        _drain([child], 0.05)
    _drain_rest(child)
    _close(child)
    output = {k: v.decode(errors="replace") for k, v in child.output.items()}
    return result[0], result[1], output["stdout"], output["stderr"]


def _run_plain(jobs: list[list[str]], cwd: Path, timeout_s: float, parallel: int = 2) -> None:
    """Run commands that must succeed (the base runs), ``parallel`` at a time."""
    queue, running = list(jobs), []
    while queue or running:
        while queue and len(running) < parallel:
            args = queue.pop(0)
            running.append((args, fork_child(args, cwd, cwd, None, None)))
        _drain([child for _, child in running], 0.05)
        for args, child in list(running):
            status, stop = _finish(child, timeout_s)
            if status is None:
                continue
            _drain_rest(child)
            _close(child)
            running.remove((args, child))
            if stop or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                stderr = child.output["stderr"][-2000:].decode(errors="replace")
                raise RuntimeError(f"base run {' '.join(args)} failed: {stderr}")


def _commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def preload() -> None:
    """Import every kirchhoffnet module (and pyplot) once, so that no child pays for its imports."""
    import importlib
    import pkgutil

    import matplotlib

    import kirchhoffnet

    matplotlib.use("Agg")
    importlib.import_module("matplotlib.pyplot")
    for module in pkgutil.walk_packages(kirchhoffnet.__path__, "kirchhoffnet."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    entry_point()


def run_sweep(
    seed: int,
    numbers: list[int],
    out: Path,
    jobs: int = 2,
    timeout_s: float = 30.0,
    memory_gb: float = 3.0,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Run the cases ``numbers`` of sweep ``seed``; write summary.json, cases.jsonl and failures/."""
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLCONFIGDIR", str(out / "mplconfig"))
    preload()
    bases = build_bases(cache or out / "bases")
    bases_before = snapshot(bases)
    limits = {"memory": _vm_size() + int(memory_gb * 2**30), "cpu": int(timeout_s) + 5}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    failures: dict[tuple[str, str, str], dict[str, Any]] = {}
    log = (out / "cases.jsonl").open("w")
    started = time.monotonic()
    queue = list(numbers)
    running: list[Child] = []
    generator_errors: list[str] = []
    finished = 0
    while queue or running:
        while queue and len(running) < jobs:
            number = queue.pop(0)
            root = out / "work" / str(number)
            try:
                case = make_case(seed, number, root, bases)
            except Exception:  # a bug of the generator, not of kirchhoffnet: noted, and the sweep goes on
                generator_errors.append(f"#{number}: {traceback.format_exc().splitlines()[-1]}")
                continue
            before, results_before = snapshot(root, case.protected), json_files(root / "sandbox")
            child = fork_child(case.args, root, root / "sandbox", limits, case)
            child.before, child.results_before = before, results_before
            running.append(child)
        _drain(running, 0.05)
        for child in list(running):
            status, stop = _finish(child, timeout_s)
            if status is None:
                continue
            _drain_rest(child)
            _close(child)
            running.remove(child)
            _record(child, status, stop, seed, out, bases, counts, failures, log)
            finished += 1
            if finished % 100 == 0:  # partial figures of a long sweep
                partial = _summary(seed, numbers, started, timeout_s, counts, failures, generator_errors)
                (out / "summary.json").write_text(json.dumps(partial, indent=1))
    log.close()
    summary = _summary(seed, numbers, started, timeout_s, counts, failures, generator_errors)
    summary["bases_intact"] = snapshot(bases) == bases_before
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(out / "work", ignore_errors=True)
    return summary


def _summary(
    seed: int,
    numbers: list[int],
    started: float,
    timeout_s: float,
    counts: dict[str, Counter[str]],
    failures: dict[tuple[str, str, str], dict[str, Any]],
    generator_errors: list[str],
) -> dict[str, Any]:
    return {
        "seed": seed,
        "cases": len(numbers),
        "first": min(numbers, default=0),
        "wall_s": round(time.monotonic() - started, 1),
        "commit": _commit(),
        "timeout_s": timeout_s,
        "done": sum(sum(c.values()) for c in counts.values()),
        "totals": dict(sum(counts.values(), Counter())),
        "counts": {command: dict(c) for command, c in sorted(counts.items())},
        "generator_errors": generator_errors,
        "failures": sorted(failures.values(), key=lambda f: (f["outcome"], f["command"])),
    }


def _record(
    child: Child,
    status: int,
    stop: str,
    seed: int,
    out: Path,
    bases: Path,
    counts: dict[str, Counter[str]],
    failures: dict[tuple[str, str, str], dict[str, Any]],
    log: Any,
) -> None:
    case = child.case
    assert case is not None
    stdout = child.output["stdout"].decode(errors="replace")
    stderr = child.output["stderr"].decode(errors="replace")
    outcome, signature = classify(status, stop, stdout, stderr, child.root / "sandbox", child.results_before)
    changed = touched(child.root, case.protected, child.before, check_tmp=not stop)
    if changed:
        outcome, signature = "touched-outside", changed
    counts[case.command][outcome] += 1
    wall = round(time.monotonic() - child.started, 2)
    entry = {"id": case.number, "command": case.command, "family": case.family, "outcome": outcome, "wall_s": wall}
    log.write(json.dumps({**entry, "done": case.done, "signature": signature}) + "\n")
    log.flush()
    if outcome in FAILURES:
        key = (case.command, outcome, signature)
        if key not in failures:
            failures[key] = _write_failure(case, outcome, signature, stderr, stdout, seed, out, bases)
        failures[key]["count"] += 1
    shutil.rmtree(child.root, ignore_errors=True)


def _write_failure(
    case: Case, outcome: str, signature: str, stderr: str, stdout: str, seed: int, out: Path, bases: Path
) -> dict[str, Any]:
    """A reproducer: the case rebuilt untouched in failures/<id>/ with repro.sh, its stderr and stdout."""
    folder = out / "failures" / str(case.number)
    make_case(seed, case.number, folder, bases)
    (folder / "case.json").write_text(json.dumps(case.as_dict(), indent=1))
    (folder / "stderr.txt").write_text(stderr[-20_000:])
    (folder / "stdout.txt").write_text(stdout[-5_000:])
    plain = " ".join(_quote(a) for a in ["kirchhoffnet", *case.args])
    rerun = f"PYTHONPATH=src OMP_NUM_THREADS=1 python -m tests.reliability.sweep --seed {seed} --only {case.number}"
    lines = ["#!/bin/sh", f"# {outcome}: {signature}", f"# sweep rerun (with its faults), from {REPO}:", f"#   {rerun}"]
    if not case.fault:
        path = 'PATH="$PWD/../bin:$PATH" ' if case.fake_ngspice else ""
        lines += ['cd "$(dirname "$0")/sandbox" || exit 1', f'TMPDIR="$PWD/../tmp" {path}PYTHONPATH={REPO}/src {plain}']
    else:
        lines += [f"cd {REPO} && {rerun} --out /tmp/fuzz-repro-{case.number}"]
    (folder / "repro.sh").write_text("\n".join(lines) + "\n")
    (folder / "repro.sh").chmod(0o755)
    return {"id": case.number, "command": case.command, "outcome": outcome, "signature": signature,
            "args": case.args, "done": case.done, "fault": case.fault, "count": 0}  # fmt: skip


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text if len(text) < 400 else text[:400])


def markdown(summary: dict[str, Any]) -> str:
    """The figures of a summary.json as a Markdown table: commands by outcome, then the totals."""
    passing = ["ok", "clean-error", *(["long-work"] if "long-work" in summary["totals"] else [])]
    outcomes = [*passing, *sorted(o for o in FAILURES if o in summary["totals"])]
    rows = ["| command | " + " | ".join(outcomes) + " |", "|---" * (len(outcomes) + 1) + "|"]
    for command, counts in summary["counts"].items():
        rows.append(f"| `{command}` | " + " | ".join(f"{counts.get(o, 0):,}" for o in outcomes) + " |")
    rows.append("| **all** | " + " | ".join(f"**{summary['totals'].get(o, 0):,}**" for o in outcomes) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--only", type=int, action="append", help="run only this case number (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fuzz-sweep"))
    parser.add_argument("--cache", type=Path, default=None, help="base runs (default OUT/bases; reused if complete)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="wall-clock bound per case, seconds")
    parser.add_argument("--memory-gb", type=float, default=3.0, help="address space per child beyond the parent's")
    parser.add_argument("--table", type=Path, help="print the Markdown table of this summary.json and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return 0
    numbers = args.only or list(range(args.start, args.start + args.cases))
    summary = run_sweep(args.seed, numbers, args.out, args.jobs, args.timeout, args.memory_gb, args.cache)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1))
    for failure in summary["failures"]:
        print(
            f"{failure['outcome']:16} {failure['command']:22} x{failure['count']:<4} "
            f"#{failure['id']}: {failure['signature']}"
        )
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
