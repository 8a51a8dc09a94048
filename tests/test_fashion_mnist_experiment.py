"""experiments/fashion_mnist.py: the --paper runs' score on the circuit's ODE (RUN/eval), which the README's
record reads."""

from __future__ import annotations

import json
import os
import time

from .conftest import experiment_script, write_finished_run


def test_fashion_mnist_scores_a_run_on_the_ode_once(tmp_path, monkeypatch):
    script = experiment_script("fashion_mnist")
    calls = []

    def evaluate(run_dir, out, overrides):
        calls.append(run_dir)
        out.mkdir(exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "solver": {"method": "dopri5"}}))
        return {"accuracy": 0.9}

    monkeypatch.setattr(script, "evaluate_run", evaluate)
    run = tmp_path / "seed0"
    write_finished_run(run, 0, 0.0, primary_metric="accuracy", test={"accuracy": 0.91})
    assert script.accuracy_on_ode(run) == script.accuracy_on_ode(run) == 0.9
    assert calls == [run]  # the second call read RUN/eval
    os.utime(run / "metrics.json", (time.time() + 10, time.time() + 10))  # the run was trained again since
    script.accuracy_on_ode(run)
    assert calls == [run, run]
