"""Bad checkpoints: truncated, reshaped, from another device family or task, or carrying code.

Three readers are attacked: our safetensors model files (``kn.load``, a run's ``load_model``), the
resumable ``checkpoint.pt`` and the original authors' ``model.pth`` (``kn.compat.load_original``).
Each must refuse with a :class:`CheckpointError` that names the file, and never execute anything.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import kirchhoffnet as kn
from kirchhoffnet.errors import CheckpointError
from kirchhoffnet.training._state import load_checkpoint, save_checkpoint

from ..conftest import small_circuit
from ..training.helpers import tiny_flow


class Payload:
    """Unpickling this runs ``os.system``: the marker file appears if any loader executes it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {self.marker}",)


def _flow() -> kn.Flow:
    return kn.Flow(small_circuit("ShiftTanh2", num_nodes=3), kn.Solver(rtol=1e-4, atol=1e-4), kn.Backprop())


BAD_FILES = ["empty", "8 bytes", "header only", "half", "all but one byte", "garbage", "non-UTF-8 global"]


def _truncations(good: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "8 bytes": good[:8],
        "header only": good[:64],
        "half": good[: len(good) // 2],
        "all but one byte": good[:-1],
        "garbage": random.Random(len(good)).randbytes(len(good)),  # seeded: the same bytes every run
        "non-UTF-8 global": b"\x80\x02c\xb1\xb1\xb1\n\xb1\n.",  # the unpickler's decode error, not a pickle one
    }


def _code_carriers(marker: Path, folder: Path) -> dict[str, Path]:
    """A raw pickle and a torch.save zip whose unpickling would run a shell command."""
    raw = folder / "raw.pkl"
    raw.write_bytes(pickle.dumps({"model": Payload(marker)}))
    zipped = folder / "zipped.pt"
    torch.save({"format": "kirchhoffnet-training-1", "model": Payload(marker)}, zipped)
    return {"raw pickle": raw, "torch.save zip": zipped}


# ---- our safetensors model files ------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_FILES)
def test_truncated_or_garbage_model_files_are_refused(case, tmp_path):
    good = kn.save(_flow(), tmp_path / "good.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_truncations(good)[case])
    with pytest.raises(CheckpointError, match=r"bad.safetensors (is not a readable safetensors checkpoint|is a)"):
        kn.load(bad)


def _rewrite(path: Path, target: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """Copy a checkpoint with its tensors or header changed by ``edit(tensors, header)``."""
    with safe_open(str(path), framework="pt") as handle:
        header = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    edit(tensors, header)
    save_file(tensors, str(target), metadata=header)
    return target


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path):
    good = kn.save(_flow(), tmp_path / "good.safetensors")
    name = next(k for k in kn.load(good).state_dict() if k.endswith("params"))

    def widen(tensors, header):  # type: ignore[no-untyped-def]
        tensors[name] = torch.zeros(tensors[name].shape[0] + 1, tensors[name].shape[1])

    bad = _rewrite(good, tmp_path / "bad.safetensors", widen)
    with pytest.raises(
        CheckpointError,
        match=r"bad.safetensors: tensor circuit.slices.0.params: ShiftTanh2 on 18 edges needs parameters of shape "
        r"\(3, 18\), got \(4, 18\)",
    ):
        kn.load(bad)


@pytest.mark.parametrize(
    ("family", "message"),
    [
        ("NoSuchFamily", r"unknown device family 'NoSuchFamily'"),
        ("ShiftRelu1", r"(shape|params)"),  # a family with another number of parameters per edge
    ],
)
def test_a_checkpoint_relabelled_with_another_device_family_is_refused(family, message, tmp_path):
    good = kn.save(_flow(), tmp_path / "good.safetensors")

    def relabel(tensors, header):  # type: ignore[no-untyped-def]
        header["spec"] = header["spec"].replace('"ShiftTanh2"', json.dumps(family))

    bad = _rewrite(good, tmp_path / "bad.safetensors", relabel)
    assert family in bad.read_bytes().decode(errors="replace")
    with pytest.raises(CheckpointError, match=rf"bad.safetensors.*{message}|{message}"):
        kn.load(bad)


def test_a_plain_safetensors_file_is_not_taken_for_a_checkpoint(tmp_path):
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other.safetensors is a safetensors file but not a kirchhoffnet"):
        kn.load(tmp_path / "other.safetensors")


def test_a_model_from_another_task_does_not_load_into_a_run(tmp_path):
    from kirchhoffnet.tasks import make_task

    network = kn.Network(small_circuit("ShiftTanh2", num_nodes=4), "last1")
    path = kn.save(network, tmp_path / "model.safetensors")
    task = make_task(tiny_flow(), "cpu", torch.float32)
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match the run's config.yaml"):
        task.load_model(path)


@pytest.mark.parametrize("carrier", ["raw pickle", "torch.save zip"])
def test_a_pickle_given_as_a_model_file_executes_nothing(carrier, tmp_path):
    marker = tmp_path / "executed"
    path = _code_carriers(marker, tmp_path)[carrier]
    with pytest.raises(CheckpointError, match=r"is not a readable safetensors checkpoint"):
        kn.load(path)
    assert not marker.exists()


# ---- the resumable training checkpoint -----------------------------------------------------------


@pytest.fixture
def training_checkpoint(tmp_path):
    flow = _flow()
    return save_checkpoint(tmp_path / "checkpoint.pt", {"model": flow.state_dict(), "step": 3})


@pytest.mark.parametrize("case", BAD_FILES)
def test_truncated_training_checkpoints_are_refused(case, training_checkpoint, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(_truncations(training_checkpoint.read_bytes())[case])
    with pytest.raises(CheckpointError, match=r"cannot read training checkpoint .*bad.pt \(truncated\?\)"):
        load_checkpoint(bad)


@pytest.mark.parametrize("carrier", ["raw pickle", "torch.save zip"])
def test_a_training_checkpoint_carrying_code_executes_nothing(carrier, tmp_path):
    marker = tmp_path / "executed"
    path = _code_carriers(marker, tmp_path)[carrier]
    with pytest.raises(CheckpointError, match=r"cannot read training checkpoint .*(truncated\?)"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_foreign_torch_file_is_not_a_training_checkpoint(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign.pt is not a kirchhoffnet training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_a_checkpoint_of_another_model_does_not_resume_a_run(tmp_path):
    from kirchhoffnet.training import train

    config = tiny_flow("train.epochs=1", "train.steps_per_epoch=1")
    run = train(config, tmp_path / "run", progress=False).run_dir
    other = kn.Flow(small_circuit("ShiftTanh2", num_nodes=3, repeat=(3, 3)))
    state = load_checkpoint(run / "checkpoint.pt")
    save_checkpoint(run / "checkpoint.pt", {**state, "model": other.state_dict()})
    with pytest.raises(CheckpointError, match=r"checkpoint.pt does not match the run's model"):
        train(config, run, resume=True, progress=False)


# ---- the original authors' results ---------------------------------------------------------------


@pytest.fixture
def original_copy(original_dir, tmp_path):
    target = tmp_path / "twomoon"
    shutil.copytree(original_dir("twomoon"), target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


@pytest.mark.parametrize("case", BAD_FILES)
def test_truncated_original_weights_are_refused(case, original_copy):
    weights = original_copy / "model.pth"
    weights.write_bytes(_truncations(weights.read_bytes())[case])
    with pytest.raises(CheckpointError, match=r"cannot read .*model.pth as a weights-only PyTorch state dict"):
        kn.compat.load_original(original_copy)


@pytest.mark.parametrize("carrier", ["raw pickle", "torch.save zip"])
def test_original_weights_carrying_code_execute_nothing(carrier, original_copy, tmp_path):
    marker = tmp_path / "executed"
    shutil.copy(_code_carriers(marker, tmp_path)[carrier], original_copy / "model.pth")
    with pytest.raises(CheckpointError, match=r"cannot read .*model.pth as a weights-only PyTorch state dict"):
        kn.compat.load_original(original_copy)
    assert not marker.exists()


def test_original_weights_of_the_wrong_shape_are_named(original_copy):
    state = torch.load(original_copy / "model.pth", map_location="cpu", weights_only=True)
    name, value = next((k, v) for k, v in state.items() if v.dim() == 2)
    torch.save({**state, name: torch.zeros(value.shape[0] + 2, value.shape[1])}, original_copy / "model.pth")
    with pytest.raises(CheckpointError, match=r"model.pth|shape"):
        kn.compat.load_original(original_copy)
