"""Import the original authors' two-moons flow and verify it, sample by sample, in ngspice.

The checkpoint (``config.yaml`` + ``model.pth`` of the original KirchhoffNet code) becomes a
``kn.Flow``; every edge becomes a behavioural current source in a SPICE netlist, and ngspice's node
voltages are compared with kirchhoffnet's along the whole trajectory. Skips (with the reason) when
ngspice is missing.

    python examples/original_in_spice.py [--fast]     # → runs/examples/spice.png, spice.json
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import kirchhoffnet as kn
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.spice import INSTALL_HINT, SpiceOptions, has_ngspice, verify

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = REPO / "data" / "original" / "twomoon"  # shipped in the repository


def main(out: Path = Path("runs/examples"), fast: bool = False) -> dict[str, float] | None:
    """Verify 2 (fast) or 8 samples; returns the report's headline figures, or None when skipped."""
    if not has_ngspice():
        print(f"skipped: ngspice is not installed ({INSTALL_HINT})")
        return None
    if not (ORIGINAL / "model.pth").is_file():
        print(f"skipped: the original checkpoint is not at {ORIGINAL}")
        return None
    torch.set_num_threads(1)  # a few-node circuit runs fastest on one core; more threads only contend
    flow = kn.compat.load_original(ORIGINAL)
    print(f"imported {ORIGINAL.name}: {len(flow.circuit.slices)} slices, {sum(flow.circuit.widths)} nodes in all")
    options = SpiceOptions(points=41 if fast else 101)  # the comparison grid per slice
    report = verify(flow, 2 if fast else 8, options=options, seed=0)
    report.figure().savefig(out / "spice.png")
    write_json_atomic(out / "spice.json", report.to_dict())
    print(
        f"{report.samples} samples, {report.edges} edges: max |ngspice - kirchhoffnet| = "
        f"{report.max_abs_error_v:.2e} V over a peak of {report.peak_abs_voltage_v:.2f} V "
        f"(ngspice {report.ngspice_s:.1f} s, kirchhoffnet {report.kirchhoffnet_s:.2f} s)"
    )
    return {"max_abs_error_v": report.max_abs_error_v, "peak_abs_voltage_v": report.peak_abs_voltage_v}


if __name__ == "__main__":
    main(fast="--fast" in sys.argv or os.environ.get("KIRCHHOFFNET_FAST") == "1")
