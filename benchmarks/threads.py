"""1 against 2 threads on every threaded benchmark, under a controlled load of busy-spinning processes.

`kirchhoffnet.runtime.use_threads(N)` puts the numba kernels on N Python threads and torch on one. Issue 22 asks
that 2 threads be never slower than 1 and that a loaded machine degrade gracefully. For each load K (``--loads``)
this starts K processes that spin on a core each (children of this one, so at its niceness; killed on exit,
Ctrl-C or error) and times each job at 1 and 2 threads, interleaved:

* the MNIST right-hand side (the original topology, random ShiftRelu1 parameters, batch ``--batch``, the fused
  kernel);
* MNIST inference at that batch with the default solver;
* the paper-topology training step (`mnist_training_step.py`'s model, adjoint, batch ``--train-batch``);
* the CNF training step on the twomoon checkpoint (batch 512, backprop; torch on 1 thread and the single-threaded
  small-circuit kernel at both settings, so it is a control for the machine's noise).

Prints per job and K the median (min) at 1 and 2 threads and their ratio, and the slowdown against K = 0 beside the
fair-share expectation. Other jobs on the machine are measured before each round as B, the mean count of runnable
threads in /proc/stat less this process's. With C cores, each of the job's T threads then gets at most
min(1, C / (K + B + T)) of a core, so at load K it should take share(0) / share(K) times its time at K = 0 (other
jobs' niceness, which the count ignores, moves this: the figure is a yardstick, not a bound).

    OMP_NUM_THREADS=1 python benchmarks/threads.py [--loads 0,1,2,4,6] [--repeats 9] [--batch 250]
        [--train-batch 16] [--skip JOB ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from common import interleaved, machine
from kirchhoffnet.data import sample_toy
from kirchhoffnet.runtime import use_threads
from mnist_classification import _random_model
from mnist_training_step import _batch, _model

TWOMOON = Path(__file__).resolve().parents[1] / "data" / "original" / "twomoon"
JOBS = ("rhs", "inference", "training", "cnf")
SPIN = "while True:\n    pass\n"


def background(seconds: float = 1.0) -> float:
    """Mean runnable threads of other processes over ``seconds`` (/proc/stat's procs_running, less the sampling
    thread itself), or NaN where /proc/stat does not exist."""
    samples: list[int] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return float("nan")
        samples.extend(int(line.split()[1]) - 1 for line in stat.splitlines() if line.startswith("procs_running"))
        time.sleep(0.02)
    return statistics.mean(samples) if samples else float("nan")


@contextmanager
def spinners(count: int) -> Iterator[None]:
    """``count`` busy-spinning child processes for the block, then none, however the block ends."""
    children = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0.0)  # let the scheduler spread them
        yield
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()


def jobs(args: argparse.Namespace) -> dict[str, Callable[[], object]]:
    """The timed jobs by name, each built once (weights, data) and run many times."""
    found: dict[str, Callable[[], object]] = {}
    torch.manual_seed(0)
    network = _random_model()
    piece = network.circuit.slice(0)
    state = torch.rand(piece.num_state, args.batch, generator=torch.Generator().manual_seed(0))
    images = torch.rand(args.batch, 784, generator=torch.Generator().manual_seed(1))
    if "rhs" not in args.skip:
        found["rhs"] = lambda: piece.field(state)
    if "inference" not in args.skip:
        found["inference"] = lambda: network(images)
    if "training" not in args.skip:
        trainer = _model(None)
        x, y, _ = _batch(args.train_batch)

        def training() -> None:
            trainer.zero_grad()
            with torch.enable_grad():
                torch.nn.functional.cross_entropy(trainer(x), y).backward()

        found["training"] = training
    if "cnf" not in args.skip:
        flow = kn.compat.load_original(TWOMOON).train()
        points = torch.from_numpy(sample_toy("twomoon", 512, seed=0)).float()

        def cnf() -> None:
            flow.zero_grad()
            with torch.enable_grad():
                (-flow.log_prob(points).mean()).backward()

        found["cnf"] = cnf
    return found


def measure(args: argparse.Namespace) -> list[dict[str, object]]:
    """Per load and job: seconds per run at 1 and 2 threads, interleaved, with the load average seen."""
    work = jobs(args)
    names = {f"{job} @{count}": (job, count) for job in work for count in (1, 2)}

    def at(job: str, count: int) -> Callable[[], object]:
        def run() -> None:
            use_threads(count)
            work[job]()

        return run

    rows = []
    for load in args.loads:
        others = background()
        with spinners(load), torch.no_grad():
            times = interleaved({name: at(*key) for name, key in names.items()}, args.repeats)
            average = os.getloadavg()[0]
        use_threads(1)
        for job in work:
            seconds = {str(count): times[f"{job} @{count}"] for count in (1, 2)}
            rows.append({"load": load, "job": job, "loadavg": average, "others": others, **seconds})
        print(f"  K = {load} done (load average {average:.1f}, other runnable threads {others:.1f})", flush=True)
    return rows


def report(rows: list[dict[str, object]], cores: int) -> None:
    """The table: medians (mins), 2 / 1, and each setting's slowdown against K = 0 beside the fair share."""

    def share(row: dict[str, object], threads: int) -> float:
        runnable = int(row["load"]) + float(row["others"]) + threads  # type: ignore[call-overload, arg-type]
        return min(1.0, cores / runnable)

    base = {(row["job"], c): row for row in rows if row["load"] == 0 for c in ("1", "2")}
    print(f"\n{machine()}")
    print("job        K  loadavg  B    1 thread: median (min) ms   2 threads: median (min) ms   2/1 med (min)", end="")
    print("   slowdown vs K=0, 1 / 2 threads (fair share)")
    for row in rows:
        one, two = row["1"], row["2"]
        assert isinstance(one, list) and isinstance(two, list)
        m1, m2 = statistics.median(one), statistics.median(two)
        line = (
            f"{row['job']:9s} {row['load']:2d} {row['loadavg']:7.1f} {row['others']:4.1f}"
            f"   {m1 * 1e3:10.2f} ({min(one) * 1e3:8.2f})"
            f"        {m2 * 1e3:10.2f} ({min(two) * 1e3:8.2f})       {m2 / m1:5.2f} ({min(two) / min(one):4.2f})"
        )
        if (row["job"], "1") in base:
            zero = base[(row["job"], "1")]
            fair = [share(zero, t) / share(row, t) for t in (1, 2)]
            slow = [m1 / statistics.median(zero["1"]), m2 / statistics.median(zero["2"])]  # type: ignore[arg-type]
            line += f"   {slow[0]:5.2f} ({fair[0]:.1f}) / {slow[1]:5.2f} ({fair[1]:.1f})"
        print(line + ("   2 SLOWER" if m2 > m1 * 1.05 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", default="0,1,2,4,6", help="spinning processes per round, comma-separated")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=250, help="MNIST images per batch (RHS and inference)")
    parser.add_argument("--train-batch", type=int, default=16, help="images per training step")
    parser.add_argument("--skip", nargs="*", default=[], choices=JOBS, help="jobs to leave out")
    parser.add_argument("--json", type=Path, help="also write every time to this file")
    args = parser.parse_args()
    try:
        args.loads = [int(k) for k in args.loads.split(",")]
    except ValueError:
        parser.error(f"--loads takes comma-separated counts, got {args.loads!r}")
    if any(k < 0 for k in args.loads):
        parser.error("--loads must be counts ≥ 0")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the spinners' `finally` runs
    use_threads(1)
    cores = os.cpu_count() or 1
    print(f"{machine()}; loads {args.loads}, {args.repeats} interleaved repeats", flush=True)
    rows = measure(args)
    report(rows, cores)
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
