"""Tasks: what a model is for, how it is evaluated and what gets written."""

from kirchhoffnet.tasks.evaluate import evaluate_flow_2d, evaluate_path

__all__ = ["evaluate_flow_2d", "evaluate_path"]
