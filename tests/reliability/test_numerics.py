"""Numerical faults: exploding circuits, step-size underflow, NaN states, NaN parameters in training.

Skipping and stopping on NaN losses are tested in tests/training/test_loop.py; here the faults come
from the physics (a circuit whose voltage grows like e^{1000 t}) and from corrupted parameters.
"""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import SolverError, TrainingError
from kirchhoffnet.training import CHECKPOINT, train
from kirchhoffnet.training._state import load_checkpoint

from ..training.helpers import tiny_flow


def exploding(gain: float) -> kn.Circuit:
    """Node 1 fed from ground by i = relu(gain·v1): dv1/dt = gain·v1, so v1 = v1(0)·e^{gain·t}."""
    piece = kn.Slice(torch.tensor([[0], [1]]), "ShiftRelu2", num_nodes=2)
    with torch.no_grad():
        piece.params.copy_(torch.tensor([[0.0], [gain], [0.0]]))
    return kn.Circuit([piece, piece], times=[0.0, 1.0, 2.0])


FIX = r"try a fixed-step method with a small step_size, looser rtol/atol, smaller device gains"


def test_the_exploding_circuit_is_exact_while_it_is_small():
    """The fault circuit is what it claims: e^{gain t} at a gain the solver can follow."""
    v, _ = kn.simulate(exploding(2.0), torch.ones(1, 1), solver=kn.Solver(rtol=1e-8, atol=1e-8))
    assert v.item() == pytest.approx(math.exp(4.0), rel=1e-5)  # two slices of 1 time unit; rtol 1e-8 -> 1e-5


@pytest.mark.parametrize(
    ("solver", "message"),
    [
        (kn.Solver("dopri5"), rf"slice 0 \(t from 0 to 1\) failed at t = 0\.\d+: the step size underflowed\. .*{FIX}"),
        (kn.Solver("rk4", step_size=0.1), r"slice 0 \(t from 0 to 1\) reached t = 1 with NaN or infinite voltages"),
        (
            kn.Solver("dopri5", max_steps=3),
            rf"slice 0 \(t from 0 to 1\) failed at t = 0\.\d+: it needed more than max_steps=3 steps\. .*{FIX}",
        ),
    ],
)
def test_a_blow_up_names_the_slice_the_time_and_a_fix(solver, message):
    with pytest.raises(SolverError, match=message):
        kn.simulate(exploding(1000.0), torch.ones(2, 1), solver=solver)


def test_a_nan_state_is_reported_as_nan_at_a_finite_time():
    circuit = exploding(1.0)
    with torch.no_grad():
        circuit.slices[0].params[1, 0] = math.nan
    with pytest.raises(
        SolverError, match=r"slice 0 \(t from 0 to 1\) failed at t = 0: .*became NaN \(NaN parameters\?\)"
    ):
        kn.simulate(circuit, torch.ones(2, 1))


def test_a_flow_log_prob_through_a_blow_up_raises_rather_than_returning_nan():
    circuit = kn.Circuit(kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2", slices=1, init="gauss")
    flow = kn.Flow(circuit, kn.Solver(max_steps=50))  # a cap keeps the doomed solve short
    with torch.no_grad():
        flow.circuit.slices[0].params.mul_(1e4)  # gains of ~1e4: far too stiff for 50 dopri5 steps
    with pytest.raises(SolverError, match=r"slice 0 \(t from 1 to 0\) failed at t = \S+: it needed more than"):
        flow.log_prob(torch.randn(4, 2))


def test_nan_parameters_never_overwrite_a_good_checkpoint(tmp_path, monkeypatch):
    """An optimiser step that leaves NaN parameters (with a finite loss) stops the run when the epoch's
    validation blows up, and the checkpoint on disk stays the last good one, byte for byte."""
    config = tiny_flow("train.epochs=3")
    good: dict[str, bytes] = {}
    original = torch.optim.AdamW.step
    count = {"steps": 0}

    def corrupting_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(self, *args, **kwargs)
        count["steps"] += 1
        if count["steps"] == 6:  # inside epoch 2: poison the parameters
            good["checkpoint"] = (tmp_path / CHECKPOINT).read_bytes()
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(math.nan)
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", corrupting_step)
    with pytest.raises(TrainingError, match=r"training stopped: validation after epoch 2 failed: slice 0 .*intact"):
        train(config, tmp_path, progress=False)
    assert (tmp_path / CHECKPOINT).read_bytes() == good["checkpoint"]
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["epoch"] == 1 and all(bool(torch.isfinite(t).all()) for t in state["model"].values())
    assert not (tmp_path / "model.safetensors").exists()


def test_a_nan_state_is_never_written_over_a_good_checkpoint(tmp_path):
    from kirchhoffnet.training._state import save_checkpoint

    good = {"model": {"w": torch.ones(3)}, "step": 1}
    path = save_checkpoint(tmp_path / CHECKPOINT, good)
    before = path.read_bytes()
    with pytest.raises(TrainingError, match=r"refusing to write .*checkpoint.pt: the model holds NaN or infinite"):
        save_checkpoint(path, {"model": {"w": torch.tensor([1.0, math.nan, 1.0])}, "step": 2})
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]  # no temporary file left either
