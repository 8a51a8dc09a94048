"""The ring comparison: RRAM crossbar score network vs KirchhoffNet score circuit vs KirchhoffNet CNF flow.

    PYTHONPATH=src python experiments/diffusion_compare.py --out runs/diffusion_compare
    PYTHONPATH=src python experiments/diffusion_compare.py --flow-steps 0        # skip the CNF flow
    PYTHONPATH=src python experiments/diffusion_compare.py --rram-run runs/ring --circuit-run runs/kn/ring_knp
    PYTHONPATH=src python experiments/diffusion_compare.py --data twomoon --flow-run runs/long/twomoon

Trains with the shared trainer (``kirchhoffnet train``; reuses a finished run, resumes an interrupted one)
and evaluates (``kirchhoffnet diffusion evaluate``, unless the run already holds evaluation.json) the two
diffusion runs of configs/diffusion/ring.yaml and ring_kirchhoffnet_passive.yaml (the 59-node circuit), trains a
KirchhoffNet CNF on the same ring by maximum likelihood, and writes compare.md and compare.json: pooled KL
of 10,000 samples against the same reference ring, parameter count, and the modelled latency and energy
of one generation (the RRAM loop's speed/energy model; the hardware package's default design,
1 pF · 1 mS · 1 V, for both circuits).

With ``--data`` (alias ``--task``) set to a 2-D flow data set (twomoon, 8gaussians, pinwheel, ...) the table
compares the score circuit trained on that set's points (``--set data=SET``) with the CNF of
``configs/flow2d/<set>.yaml`` (``--flow-run`` reuses a
trained run directory, else it is trained): KL as above (the circuit sampled exactly, without the ring's
β ×1.2), the NLL of the same 2,000 held-out points under each model's density, and training time. The
crossbar network is the ring's model and is left out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

import kirchhoffnet as kn
from common import train_unless_finished
from kirchhoffnet.data.points import POINT_SETS, sample_points, sample_ring
from kirchhoffnet.diffusion._threads import single_thread
from kirchhoffnet.diffusion.circuit_run import held_out_points
from kirchhoffnet.diffusion.evaluate import evaluate
from kirchhoffnet.diffusion.metrics import kl_pooled
from kirchhoffnet.diffusion.run import RUN_METRICS, load_run
from kirchhoffnet.hardware.analysis import analyze
from kirchhoffnet.io import write_json_atomic, write_text_atomic
from kirchhoffnet.runs import load_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "diffusion"
REFERENCE_SEED = 12345  # the diffusion evaluation's reference ring


def diffusion_row(
    config: Path, run_dir: Path, solver: str, data: str = "ring", progress: bool = True
) -> dict[str, Any]:
    """Train (on ``data``'s points) and evaluate a diffusion run unless that was done; its row of the table."""
    train_unless_finished(config, [f"data={data}"], run_dir, progress)
    if not (run_dir / RUN_METRICS).is_file():
        evaluate(run_dir, progress=progress)
    metrics = json.loads((run_dir / RUN_METRICS).read_text())
    params = sum(p.numel() for p in load_run(run_dir).model.parameters())
    trained = json.loads((run_dir / "metrics.json").read_text())
    row = {
        "kl_pooled": metrics[solver]["kl_pooled"],
        "parameters": params,
        "solver": solver,
        "train_time_s": trained["train_wall_time_s"],
    }
    if "hardware" in metrics:  # the score circuit
        hw = metrics["hardware"]
        row |= {"nll_nats": metrics["nll"]["nats"]} if "nll" in metrics else {}
        return row | {"nodes": hw["num_nodes"], "latency_s": hw["latency_s"], "energy_j": hw["energy_j"]}
    se = metrics["speed_energy"]
    return row | {"nodes": None, "latency_s": se["analog"]["latency_s"], "energy_j": se["analog"]["energy_j"]}


def flow_row(steps: int, batch: int, seed: int) -> dict[str, Any]:
    """A KirchhoffNet CNF (the flow2d circuit: 4 slices of fully_connect(3, repeat (25, 25)), ShiftTanh2)
    trained by maximum likelihood on the ring; its row of the table."""
    torch.manual_seed(seed)
    circuit = kn.Circuit(
        kn.topology.fully_connect(3, repeat=(25, 25)), "ShiftTanh2", slices=4, times=[0, 0.5, 1, 1.5, 2]
    )
    flow = kn.Flow(circuit, kn.Solver("rk4", step_size=0.1), gradient=kn.Backprop())
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=1e-4)
    start = time.perf_counter()
    with single_thread():
        for step in range(steps):
            loss = -flow.log_prob(sample_ring(batch, seed=seed * 1_000_003 + step)).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            optimizer.step()
            schedule.step()
        train_s = time.perf_counter() - start
        with torch.no_grad():
            reference = sample_ring(10_000, seed=REFERENCE_SEED)
            x = flow.sample(10_000, torch.Generator().manual_seed(seed))
            nll = float(-flow.log_prob(reference[:2000]).mean())
            report = analyze(flow, torch.randn(200, 2, generator=torch.Generator().manual_seed(seed)))
    return {
        "kl_pooled": kl_pooled(x, reference),
        "parameters": sum(p.numel() for p in flow.parameters()),
        "nodes": 3,
        "latency_s": report.latency_s,
        "energy_j": report.energy_j,
        "solver": "rk4, 0.1",
        "nll_nats": nll,
        "train_steps": steps,
        "train_time_s": train_s,
    }


def cached_flow_row(path: Path, steps: int, batch: int) -> dict[str, Any]:
    """The flow row from ``path`` when it was trained with the same steps and batch, else trained and written."""
    if path.is_file():
        row = json.loads(path.read_text())
        if row.get("train_steps") == steps and row.get("train_batch") == batch:
            return row
    row = flow_row(steps, batch, seed=0) | {"train_batch": batch}
    write_json_atomic(path, row)
    return row


def trained_flow_row(data: str, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """The CNF of configs/flow2d/<data>.yaml (trained into ``run_dir`` unless it finished there), scored on the
    same reference and held-out points as the score circuit; its row of the table."""
    train_unless_finished(CONFIGS.parent / "flow2d" / f"{data}.yaml", [], run_dir, progress)
    flow = load_model(run_dir)
    trained = json.loads((run_dir / "metrics.json").read_text())
    with single_thread(), torch.no_grad():
        samples = flow.sample(10_000, torch.Generator().manual_seed(0))
        held_out = held_out_points(data, REFERENCE_SEED)  # the circuit evaluation's points
        nll = float(-flow.log_prob(held_out).mean())
        report = analyze(flow, torch.randn(200, 2, generator=torch.Generator().manual_seed(0)))
    return {
        "kl_pooled": kl_pooled(samples, sample_points(data, 10_000, seed=REFERENCE_SEED)),
        "nll_nats": nll,
        "parameters": sum(p.numel() for p in flow.parameters()),
        "nodes": max(flow.circuit.widths) + 1,  # ground included
        "latency_s": report.latency_s,
        "energy_j": report.energy_j,
        "solver": flow.solver.method,
        "train_time_s": trained["train_cpu_time_s"],
    }


def markdown(rows: dict[str, dict[str, Any]], with_nll: bool = False) -> str:
    """The table; ``with_nll`` adds the held-out NLL and training time (the flow data sets' table: every row
    has them there, while the ring table's crossbar row has no density)."""
    extra = " NLL (nats) | train time |" if with_nll else ""
    lines = [
        f"| model | KL pooled |{extra} parameters | nodes | latency / generation | energy / generation |",
        "|---|---|" + "---|---|" * with_nll + "---|---|---|---|",
    ]
    for name, r in rows.items():
        nodes = "—" if r["nodes"] is None else str(r["nodes"])
        cells = f" {r['nll_nats']:.3f} | {r['train_time_s']:.0f} s |" if with_nll else ""
        lines.append(
            f"| {name} | {r['kl_pooled']:.4f} |{cells} {r['parameters']} | {nodes} | "
            f"{kn.hardware.units.format_quantity(r['latency_s'], 's')} | "
            f"{kn.hardware.units.format_quantity(r['energy_j'], 'J')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--out", type=Path, default=Path("runs/diffusion_compare"), help="runs and the table")
    args.add_argument("--flow-steps", type=int, default=400, help="CNF training steps (0 = no flow row)")
    args.add_argument("--flow-batch", type=int, default=256, help="CNF batch size")
    args.add_argument("--rram-run", type=Path, help="an evaluated crossbar ring run to reuse (default: train one)")
    args.add_argument("--circuit-run", type=Path, help="an evaluated score-circuit run to reuse (default: train one)")
    args.add_argument("--no-rram", action="store_true", help="leave the RRAM row out (its evaluation is long)")
    args.add_argument(
        "--data", "--task", dest="data", default="ring", choices=POINT_SETS, help="ring, or a 2-D flow data set"
    )
    args.add_argument("--flow-run", type=Path, help="with --data: a trained configs/flow2d/<set>.yaml run to reuse")
    args.add_argument("--no-progress", action="store_true", help="no progress bars or lines while training")
    options = args.parse_args()
    out: Path = options.out
    progress = not options.no_progress
    if options.data != "ring":
        table = point_set_table(options.data, out, options.circuit_run, options.flow_run, progress)
        print(table)
        return
    rows = {}
    if not options.no_rram:
        rram_dir = options.rram_run or out / "ring"
        rows["RRAM crossbar score network (analog PF-ODE)"] = diffusion_row(
            CONFIGS / "ring.yaml", rram_dir, "analog-ode", progress=progress
        )
    circuit_dir = options.circuit_run or out / "ring_kirchhoffnet_passive"
    rows["KirchhoffNet score circuit (its own transient)"] = diffusion_row(
        CONFIGS / "ring_kirchhoffnet_passive.yaml", circuit_dir, "pf-ode", progress=progress
    )
    if options.flow_steps > 0:
        rows["KirchhoffNet CNF flow"] = cached_flow_row(out / "flow.json", options.flow_steps, options.flow_batch)
    write_json_atomic(out / "compare.json", rows)
    write_text_atomic(out / "compare.md", markdown(rows))
    print(markdown(rows))


def point_set_table(
    data: str, out: Path, circuit_run: Path | None, flow_run: Path | None, progress: bool = True
) -> str:
    """The score circuit against the CNF on a 2-D flow data set; writes compare_<data>.md/.json."""
    rows = {
        "KirchhoffNet score circuit (its own transient)": diffusion_row(
            CONFIGS / "ring_kirchhoffnet_passive.yaml",
            circuit_run or out / f"{data}_kirchhoffnet_passive",
            "pf-ode (exact)",  # the circuit's own density, like the CNF's (β ×1.2 is the ring's sharpening)
            data,
            progress,
        ),
        "KirchhoffNet CNF flow": trained_flow_row(data, flow_run or out / f"{data}_flow", progress),
    }
    table = markdown(rows, with_nll=True)
    write_json_atomic(out / f"compare_{data}.json", rows)
    write_text_atomic(out / f"compare_{data}.md", table)
    return table


if __name__ == "__main__":
    main()
