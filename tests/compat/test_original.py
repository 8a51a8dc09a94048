"""Import of the original KirchhoffNet checkpoints: golden conformance and bad input."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
import yaml

import kirchhoffnet as kn
from kirchhoffnet.compat import load_original
from kirchhoffnet.errors import CheckpointError


@pytest.mark.parametrize("name", ["twomoon", "8gaussians"])
def test_golden_references_at_tight_tolerance(name, original_dir):
    """float64 at rtol = atol = 1e-9 reproduces the original code's float64 references."""
    path = original_dir(name)
    golden = np.load(path / "golden.npz")
    flow = load_original(path, rtol=1e-9, atol=1e-9).double()
    x = torch.from_numpy(golden["x"])
    with torch.no_grad():
        log_p = flow.log_prob(x).numpy()
        z = flow.inverse(x).numpy()
        x_gen = flow.sample(torch.from_numpy(golden["z_in"])).numpy()
    expected_log_p = -0.5 * (golden["z"] ** 2).sum(1) - np.log(2 * np.pi) - golden["delta_logp"]
    # The bound is 1e-4; we observe ~3e-7 (solver error at 1e-9 accumulated over 4 slices).
    np.testing.assert_allclose(log_p, expected_log_p, rtol=0, atol=1e-4)
    np.testing.assert_allclose(z, golden["z"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(x_gen, golden["x_gen"], rtol=0, atol=1e-4)
    assert abs(-log_p.mean() - float(golden["nll"])) < 1e-5


@pytest.mark.parametrize("name", ["twomoon", "8gaussians"])
def test_nll_at_the_configs_own_tolerance(name, original_dir):
    """float32 at the config's tol gives the original code's NLL (same solver and step control)."""
    path = original_dir(name)
    golden = np.load(path / "golden.npz")
    flow = load_original(path)
    assert flow.solver.rtol == flow.solver.atol == float(golden["checkpoint_tol"])
    with torch.no_grad():
        nll = -flow.log_prob(torch.from_numpy(golden["x"]).float()).mean().item()
    assert abs(nll - float(golden["nll_checkpoint_tol"])) < 1e-3


def test_loaded_flow_structure(original_dir):
    flow = load_original(original_dir("twomoon"))
    assert isinstance(flow, kn.Flow) and not flow.training
    assert flow.circuit.times == (0.0, 0.5, 1.0)
    assert [s.num_edges for s in flow.circuit.slices] == [300, 300]
    assert flow.gradient == kn.Adjoint()
    assert flow.solver.first_step == 1e-3 and flow.solver.min_step == 1e-6
    assert kn.compat.read_config(original_dir("twomoon"))["test_bench"] == "twomoon"


@pytest.fixture
def result_copy(tmp_path, original_dir):
    """A writable copy of the twomoon result to damage."""
    target = tmp_path / "twomoon"
    shutil.copytree(original_dir("twomoon"), target)
    return target


def _edit_config(path, edit):
    config = yaml.safe_load((path / "config.yaml").read_text())
    edit(config)
    (path / "config.yaml").write_text(yaml.safe_dump(config))


def test_missing_files_are_named(tmp_path, result_copy):
    with pytest.raises(CheckpointError, match=r"config.yaml not found"):
        load_original(tmp_path)
    (result_copy / "model.pth").unlink()
    with pytest.raises(CheckpointError, match=r"model.pth not found"):
        load_original(result_copy)


def test_unknown_device_is_refused(result_copy):
    _edit_config(result_copy, lambda c: c["network"]["model"].update(name="ShiftSine"))
    with pytest.raises(CheckpointError, match=r"network.model.name: unknown device family 'ShiftSine'"):
        load_original(result_copy)


def test_wrong_shapes_are_refused(result_copy):
    _edit_config(result_copy, lambda c: c["network"]["net_struct"][0]["args"].update(repeat=[10, 10]))
    with pytest.raises(
        CheckpointError, match=r"has shape \(3, 300\) but ShiftTanh2 on slice 0's 120 edges needs \(3, 120\)"
    ):
        load_original(result_copy)


def test_other_device_family_with_other_row_count_is_refused(result_copy):
    _edit_config(result_copy, lambda c: c["network"]["model"].update(name="ShiftRelu1"))
    with pytest.raises(CheckpointError, match=r"needs \(2, 300\)"):
        load_original(result_copy)


def test_missing_slice_and_extra_tensors_are_refused(result_copy):
    state = torch.load(result_copy / "model.pth", weights_only=True, map_location="cpu")
    state["circuit.layer_list.9.model.param"] = torch.zeros(1)
    torch.save(state, result_copy / "model.pth")
    with pytest.raises(CheckpointError, match=r"tensors the config does not explain: \['circuit.layer_list.9"):
        load_original(result_copy)
    del state["circuit.layer_list.1.model.param"]
    torch.save(state, result_copy / "model.pth")
    with pytest.raises(CheckpointError, match=r"lacks circuit.layer_list.1.model.param"):
        load_original(result_copy)


def test_time_grid_must_match_the_slices(result_copy):
    _edit_config(result_copy, lambda c: c["simulation"].update(t_end=[0.0, 1.0]))
    with pytest.raises(CheckpointError, match="t_end has 2 entries but net_struct has 2 slices"):
        load_original(result_copy)


def test_truncated_weights_are_refused(result_copy):
    data = (result_copy / "model.pth").read_bytes()
    (result_copy / "model.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read .*model\.pth as a weights-only PyTorch state dict"):
        load_original(result_copy)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran from a checkpoint",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickles_carrying_code_are_refused(result_copy, capsys):
    with open(result_copy / "model.pth", "wb") as handle:
        pickle.dump({"circuit.layer_list.0.model.param": _Payload()}, handle)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_original(result_copy)
    assert "code ran" not in capsys.readouterr().out


def test_unsupported_generator_is_named(result_copy):
    _edit_config(result_copy, lambda c: c["network"]["net_struct"][0].update(name="_pregiven"))
    with pytest.raises(CheckpointError, match=r"net_struct\[0\] uses topology generator '_pregiven'"):
        load_original(result_copy)


def test_invalid_yaml_is_reported(result_copy):
    (result_copy / "config.yaml").write_text("network: [unclosed")
    with pytest.raises(CheckpointError, match="is not valid YAML"):
        load_original(result_copy)


def test_classifier_config_builds_a_network(tmp_path):
    """A small image-classification config of the original code becomes a Network with its readout."""
    config = {
        "test_bench": "mnist",
        "network": {
            "adjoint": True,
            "fill": "zeros",
            "residual": None,
            "projector": "last3",
            "model": {"name": "ShiftRelu1", "args": {}},
            "net_struct": [
                {
                    "name": "_mix_connect",
                    "args": {
                        "num_channel": 1,
                        "width": 4,
                        "height": 4,
                        "neighbor_size": 2,
                        "fully_connect_node": 3,
                        "repeat": [1, 1],
                        "kernel_repeat": 1,
                    },
                }
            ]
            * 2,
        },
        "simulation": {
            "t_end": [0.0, 1.0, 2.0],
            "tol": 1e-3,
            "method": "dopri5",
            "first_step": 1e-2,
            "min_step": 1e-5,
            "step_size": 1e-6,
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    edges = kn.topology.mix_connect(1, 4, 4, 2, 3, (1, 1))
    params = torch.randn(2, edges.shape[1]) * 0.3
    torch.save({f"circuit.layer_list.{k}.model.param": params for k in range(2)}, tmp_path / "model.pth")
    net = load_original(tmp_path)
    assert isinstance(net, kn.Network)
    logits = net(torch.rand(5, 16))
    assert logits.shape == (5, 3)
    assert net.circuit.slice(0).num_state == 19
