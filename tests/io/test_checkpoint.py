"""Our checkpoints: round trip, atomic writes, refusal of bad files."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

import kirchhoffnet as kn
from kirchhoffnet.errors import CheckpointError, SolverError
from kirchhoffnet.io import atomic_write, read_tensors, write_json_atomic

from ..conftest import small_circuit


def _models():
    circuit = small_circuit("ShiftLeakyRelu1", num_nodes=5, capacitance=torch.tensor([1.0, 2.0, 0.5, 1.5]))
    return {
        "circuit": circuit,
        "flow": kn.Flow(
            small_circuit("ShiftTanh2", num_nodes=3), kn.Solver(rtol=1e-6, atol=1e-6), kn.Adjoint(seminorm=True)
        ),
        "network": kn.Network(circuit, {"name": "linear", "in_nodes": 4, "out_features": 2}),
    }


@pytest.mark.parametrize("kind", ["circuit", "flow", "network"])
def test_round_trip_reproduces_the_model(kind, tmp_path):
    model = _models()[kind]
    path = kn.save(model, tmp_path / "model.safetensors", metadata={"epoch": 3})
    loaded = kn.load(path)
    assert type(loaded) is type(model)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = torch.randn(4, 2 if kind == "flow" else 3)
    if kind == "circuit":
        torch.testing.assert_close(kn.simulate(loaded, x)[0], kn.simulate(model, x)[0])
    elif kind == "flow":
        torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))
        assert loaded.solver == model.solver and loaded.gradient == kn.Adjoint(seminorm=True)
        # the file names the method as the YAML does: the name, and the seminorm among the solver settings
        spec = read_tensors(path)[0]
        assert spec["gradient"] == "adjoint" and spec["solver"]["adjoint_seminorm"] is True
    else:
        torch.testing.assert_close(loaded(x), model(x))
    assert read_tensors(path)[2] == {"epoch": 3}


def test_saving_leaves_no_temporary_files(tmp_path):
    kn.save(_models()["flow"], tmp_path / "a.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomic(target, {"ok": 1})

    def crash(tmp):
        tmp.write_text('{"half": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"loss": float("nan")}, "loss is nan"),
        ({"rows": [{"v": 1.0}, {"v": -math.inf}]}, r"rows\[1\]\.v is -inf"),
        ([0.5, math.inf], r"\[1\] is inf"),
    ],
)
def test_nan_is_not_written_as_json_and_the_error_names_where(tmp_path, data, where):
    with pytest.raises(SolverError, match=rf"^m\.json not written: {where}; a result is never NaN"):
        write_json_atomic(tmp_path / "m.json", data)
    assert not (tmp_path / "m.json").exists()


def test_truncated_checkpoint_is_refused(tmp_path):
    path = kn.save(_models()["circuit"], tmp_path / "c.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        kn.load(path)


def test_foreign_safetensors_file_is_refused(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a kirchhoffnet checkpoint"):
        kn.load(tmp_path / "other.safetensors")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        kn.load(tmp_path / "nope.safetensors")


def test_tensor_of_wrong_shape_is_refused(tmp_path):
    model = _models()["circuit"]
    path = kn.save(model, tmp_path / "c.safetensors")
    spec, tensors, _ = read_tensors(path)
    tensors["slices.1.params"] = tensors["slices.1.params"][:, :3].contiguous()
    header = {"format": "kirchhoffnet-checkpoint-1", "spec": json.dumps(spec), "metadata": "{}"}
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(
        CheckpointError, match=r"ShiftLeakyRelu1 on 60 edges needs parameters of shape \(2, 60\), got \(2, 3\)"
    ):
        kn.load(path)


def test_load_model_finds_files_run_directories_and_original_results(tmp_path, original_dir):
    from kirchhoffnet.checkpoint import RUN_MODEL
    from kirchhoffnet.runs import load_model

    model = _models()["flow"]
    kn.save(model, tmp_path / RUN_MODEL)
    assert isinstance(load_model(tmp_path / RUN_MODEL), kn.Flow)
    assert isinstance(load_model(tmp_path), kn.Flow)
    assert isinstance(load_model(original_dir("twomoon")), kn.Flow)
    with pytest.raises(CheckpointError, match="is neither a checkpoint file, a run directory"):
        load_model(tmp_path / "missing")


def test_npy_results_are_written_atomically(tmp_path, monkeypatch):
    import numpy as np

    from kirchhoffnet.io import save_npy_atomic

    target = tmp_path / "samples.npy"
    save_npy_atomic(target, np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(np.load(target), np.arange(6.0).reshape(3, 2))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_npy_atomic(target, np.zeros(4))
    np.testing.assert_array_equal(np.load(target), np.arange(6.0).reshape(3, 2))  # the old file survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.npy"]  # and no temporary is left
