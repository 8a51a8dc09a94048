"""Thermal-noise SDE of one flow slice: one normal draw per step (SteppedBrownian) vs torchsde's BrownianInterval.

Both run the same Euler–Maruyama integration of the same SliceSDE (twomoon-sized: 300 edges,
2 nodes); only the source of the Wiener increments differs.

    python benchmarks/noise_sde.py [--batch 500] [--steps 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchsde

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from common import interleaved, machine, summary
from kirchhoffnet._brownian import SteppedBrownian
from kirchhoffnet.hardware import PhysicalDesign
from kirchhoffnet.hardware.noise import SliceSDE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    piece = kn.Slice(kn.topology.fully_connect(3, (25, 25)), "ShiftTanh2")
    sde = SliceSDE(piece, PhysicalDesign(capacitance_f=1e-15).thermal_epsilon, None, torch.float32)
    y0 = torch.randn(args.batch, 2)
    ts = torch.tensor([0.0, 1.0])
    dt = 1.0 / args.steps
    size = (args.batch, piece.num_edges)

    def stepped():
        with torch.no_grad():
            return torchsde.sdeint(sde, y0, ts, bm=SteppedBrownian(size, torch.float32, 0), method="euler", dt=dt)

    def interval():
        bm = torchsde.BrownianInterval(0.0, 1.0, size=size, dtype=torch.float32, entropy=0)
        with torch.no_grad():
            return torchsde.sdeint(sde, y0, ts, bm=bm, method="euler", dt=dt)

    times = interleaved({"BrownianInterval": interval, "SteppedBrownian": stepped}, repeats=args.repeats)
    print(f"noise SDE, {args.batch} samples × {piece.num_edges} edges, {args.steps} Euler steps — {machine()}")
    print(summary(times, baseline="BrownianInterval", unit="ms"))


if __name__ == "__main__":
    main()
