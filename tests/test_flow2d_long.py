"""experiments/flow2d_long.py pairs a run with the original checkpoint on the same fresh points: the
difference it reports must be per point, on points both models saw."""

from __future__ import annotations

import pytest

from .conftest import experiment_script

script = experiment_script("flow2d_long")


def test_pairing_a_checkpoint_with_itself_differs_by_nothing(original_dir, monkeypatch, tmp_path):
    from kirchhoffnet.compat import load_original

    monkeypatch.setattr(script, "POINTS", 400)
    monkeypatch.setattr(script, "open_run", lambda run_dir: (None, None, load_original(original_dir("twomoon"))))
    result = script.paired(tmp_path, original_dir("twomoon"), "twomoon")
    assert result["points"] == 800 and result["original"] == "data/original/twomoon"
    assert result["difference_nats"] == 0.0 and result["difference_stderr_nats"] == 0.0
    # the authors' twomoon checkpoint scores 1.022 ± 0.008 on 10,000 points; 800 carry ~0.03 of error
    assert result["ours_nll_nats"] == pytest.approx(1.03, abs=0.1)


def test_pairing_reports_the_per_point_difference_and_its_standard_error(original_dir, monkeypatch, tmp_path):
    from kirchhoffnet.compat import load_original

    monkeypatch.setattr(script, "POINTS", 300)
    looser = load_original(original_dir("twomoon"), rtol=1e-2, atol=1e-2)
    monkeypatch.setattr(script, "open_run", lambda run_dir: (None, None, looser))
    result = script.paired(tmp_path, original_dir("twomoon"), "twomoon")
    assert result["difference_nats"] == pytest.approx(result["ours_nll_nats"] - result["original_nll_nats"])
    # two solves of one network: the difference is the looser solve's error, small but not nothing
    assert result["difference_stderr_nats"] > 0 and 0 < abs(result["difference_nats"]) < 0.1
