"""The hostile sweep: the instrument checked against children with known outcomes, its cases checked
for reproducibility, then a bounded sample of every command (the full 10,000 cases are ``slow``).

Bounded sample: ``SWEEP_CASES`` cases (4 per leaf command) of seed 20, each bounded at 15 s.
Full sweep (documented in docs/reliability.md)::

    PYTHONPATH=src OMP_NUM_THREADS=1 python -m tests.reliability.sweep --cases 10000 --seed 1 --out /tmp/fuzz-sweep
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .cases import COMMANDS, make_case
from .classify import classify, json_files, snapshot, touched
from .hostile import break_file
from .sweep import REPO, build_bases, run_one

SWEEP_CASES = 4 * len(COMMANDS)
SEED = 20


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """The tiny base runs, trained once for this module (in a child, as the sweep does)."""
    folder = tmp_path_factory.mktemp("sweep") / "bases"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.sweep",
            "--cases",
            "0",
            "--out",
            str(folder.parent),
            "--cache",
            str(folder),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return build_bases(folder)  # complete: returns at once


# ---- the instrument: each outcome class is recognised from a child that produces it ----


def _clean_error(args: list[str]) -> int:
    # a progress bar (tqdm redraws with carriage returns), then the error
    print("\r 50%|#####     | 1/2 [00:01<00:01]\r100%|##########| 2/2 [00:02<00:00]", file=sys.stderr)
    print("error: config.yaml: seed: must be >= 0, got -1", file=sys.stderr)
    return 2


def _noisy_error(args: list[str]) -> int:
    print("warning: something\nerror: two lines", file=sys.stderr)
    return 2


def _raises(args: list[str]) -> int:
    raise KeyError("history")


def _internal(args: list[str]) -> int:
    print("error: internal error (KeyError: 'history'); please report it", file=sys.stderr)
    return 1


def _segfault(args: list[str]) -> int:
    os.kill(os.getpid(), signal.SIGSEGV)
    return 0


def _sleeps(args: list[str]) -> int:
    time.sleep(60)
    return 0


def _progresses(args: list[str]) -> int:
    from kirchhoffnet._progress import bar

    for _ in bar(range(10**6), desc="train", unit="step"):
        time.sleep(0.01)
    return 0


def _prints_nan(args: list[str]) -> int:
    print(json.dumps({"max_abs_error_v": math.nan, "passed": True}))
    return 0


def _writes_nan_json(args: list[str]) -> int:
    Path("figures.json").write_text(json.dumps({"yield": math.inf}))
    return 0


def _writes_outside(args: list[str]) -> int:
    Path("../outside/victim.txt").write_text("overwritten")
    return 0


def _silent(args: list[str]) -> int:
    return 2


def _exit_3(args: list[str]) -> int:
    return 3


CHILDREN = {
    "clean-error": _clean_error,
    "multi-line": _noisy_error,
    "traceback": _raises,
    "internal-error": _internal,
    "native-crash": _segfault,
    "hang": _sleeps,
    "long-work": _progresses,
    "nan-pass": _prints_nan,
    "nan-pass (file)": _writes_nan_json,
    "touched-outside": _writes_outside,
    "no-line": _silent,
    "bad-exit": _exit_3,
}


@pytest.mark.parametrize("expected", list(CHILDREN))
def test_each_outcome_is_recognised(expected, tmp_path):
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("a user's file\n")
    before = snapshot(tmp_path)
    (tmp_path / "sandbox" / "planted.json").write_text('{"loss": NaN}')  # an input, not a result
    results_before = json_files(tmp_path / "sandbox")
    bound = 5.5 if expected == "long-work" else 3.0  # two progress lines, 2 s apart, before the bound
    status, stop, stdout, stderr = run_one([], tmp_path, tmp_path / "sandbox", bound, target=CHILDREN[expected])
    outcome, signature = classify(status, stop, stdout, stderr, tmp_path / "sandbox", results_before)
    changed = touched(tmp_path, [], before)
    if changed:
        outcome = "touched-outside"
    assert outcome == expected.split(" ")[0], (outcome, signature, stderr)
    if expected == "traceback":
        assert signature.startswith("KeyError: '…'"), signature


# ---- the cases: reproducible from (seed, number), runnable from their sandbox ----


def test_hostile_links_stay_inside_the_sweeps_root(tmp_path, monkeypatch):
    """Every link `break_file` plants points at a device, "/", the run directory or into outside/, whatever
    the harness's working directory: a dangling name resolved against it once wrote into the repository."""
    run, outside, elsewhere = tmp_path / "root" / "sandbox" / "run", tmp_path / "root" / "outside", tmp_path / "cwd"
    for folder in (run, outside, elsewhere):
        folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(elsewhere)
    targets = set()
    for seed in range(200):
        path = run / "metrics.json"
        path.unlink(missing_ok=True)
        path.write_text("{}")
        done = break_file(random.Random(seed), path, outside)
        if path.is_symlink():
            target = (path.parent / os.readlink(path)).resolve()
            targets.add(done.split("->")[1])
            allowed = target in (Path("/dev/zero"), Path("/dev/null"), Path("/"), run) or target.parent == outside
            assert allowed, f"{done}: the link points at {target}"
    assert targets == {"/dev/zero", "/dev/null", "victim.txt", "missing-file", ".", "/"}


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.integers(0, 10**6), seed=st.integers(0, 2**31))
def test_a_case_is_rebuilt_identically_from_its_seed_and_number(bases, tmp_path, number, seed):
    first = make_case(seed, number, tmp_path / "a", bases)
    second = make_case(seed, number, tmp_path / "b", bases)
    assert first == second
    assert first.command == sorted(COMMANDS)[number % len(COMMANDS)]
    words = COMMANDS[first.command]["words"]
    assert first.args[: len(words)] == words
    assert not any(arg.startswith("/") for arg in first.args), first.args  # relative: the repro runs anywhere
    assert snapshot(tmp_path / "a" / "sandbox") == snapshot(tmp_path / "b" / "sandbox")


# ---- the sweep itself ----


def _sweep(tmp_path: Path, bases: Path, cases: int, seed: int, timeout_s: float) -> dict:
    command = [sys.executable, "-m", "tests.reliability.sweep", "--cases", str(cases), "--seed", str(seed)]
    command += ["--out", str(tmp_path / "sweep"), "--cache", str(bases), "--timeout", str(timeout_s)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=cases * 60)
    summary_file = tmp_path / "sweep" / "summary.json"
    assert summary_file.is_file(), done.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    print(f"\nsweep of {cases} cases (seed {seed}) in {summary['wall_s']} s: {summary['totals']}")
    return summary


def _report(summary: dict) -> str:
    return "\n".join(
        f"{f['outcome']} in {f['command']} (x{f['count']}, case #{f['id']}: {' '.join(f['args'])[:160]}): "
        + f["signature"]
        for f in summary["failures"]
    )


def test_a_bounded_sweep_of_every_command_finds_no_failure(bases, tmp_path):
    summary = _sweep(tmp_path, bases, SWEEP_CASES, SEED, 15.0)
    assert summary["done"] == SWEEP_CASES and not summary["generator_errors"], summary["generator_errors"]
    assert set(summary["counts"]) == set(COMMANDS)
    assert summary["bases_intact"]
    assert not summary["failures"], "the sweep found:\n" + _report(summary)


@pytest.mark.slow
def test_the_full_sweep_finds_no_failure(bases, tmp_path):
    cases = int(os.environ.get("KIRCHHOFFNET_SWEEP_CASES", "10000"))
    summary = _sweep(tmp_path, bases, cases, 1, 30.0)
    assert summary["done"] == cases and summary["bases_intact"] and not summary["generator_errors"]
    assert not summary["failures"], "the sweep found:\n" + _report(summary)
