"""Hostile inputs for the sweep: tiny valid run directories, then the ways a careless or hostile user
(or a failing disk) breaks them. Every generator takes a seeded ``random.Random``, so a case is
reproduced by its seed and number alone.

Mutations of files work on copies inside the case's sandbox; the base runs in the cache are never
touched (the sweep checks that).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from .fuzz import BAD_NUMBERS, TARGETED, _parent, paths

# Tiny configs of every kind of run the commands read: each trains in about a second.
_CIRCUIT = {"slices": 1, "times": [0.0, 1.0], "device": "ShiftTanh2"}
_SOLVER = {"method": "rk4", "step_size": 0.25, "gradient": "backprop"}
_TRAIN = {"epochs": 1, "batch_size": 32, "lr": 0.01, "validate_every": 1}
TRAINING_BASES: dict[str, dict[str, Any]] = {
    "flow": {
        "task": "flow2d",
        "name": "tinyflow",
        "threads": 1,
        "data": {"name": "twomoon", "train_size": 64, "val_size": 32, "test_size": 64},
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 3, "repeat": [1, 1]}, **_CIRCUIT},
        "solver": _SOLVER,
        "train": _TRAIN,
    },
    "mos": {  # MosRelu devices: what `spice iv` and `--transistors` check
        "task": "flow2d",
        "name": "tinymos",
        "threads": 1,
        "data": {"name": "twomoon", "train_size": 64, "val_size": 32, "test_size": 64},
        "circuit": {
            "topology": {"name": "fully_connect", "num_nodes": 3, "repeat": [1, 1]},
            **_CIRCUIT,
            "device": "MosRelu",
        },
        "solver": _SOLVER,
        "train": _TRAIN,
    },
    "reg": {
        "task": "regression",
        "name": "tinyreg",
        "threads": 1,
        "data": {"name": "friedman", "n_samples": 120, "n_features": 5},
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 7, "repeat": [1, 1]}, **_CIRCUIT},
        "readout": "last1",
        "solver": _SOLVER,
        "train": _TRAIN,
    },
    "cls": {
        "task": "classify",
        "name": "tinycls",
        "threads": 1,
        "data": {"name": "fashion_mnist", "downsample": 7, "train_subset": 80, "test_subset": 40, "val_size": 20},
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 26, "repeat": [1, 1]}, **_CIRCUIT},
        "readout": "last10",
        "solver": _SOLVER,
        "train": {**_TRAIN, "batch_size": 40},
    },
}
_SCORE_TRAIN = {  # enough steps that the probability-flow samples land on the KL histogram (a finite KL)
    "train": {"epochs": 1, "steps_per_epoch": 150, "batch_size": 128, "lr": 0.003, "grad_clip": 1.0},
    "score_matching": {"val_size": 128},
    "sample": {"steps": 20},
}
DIFFUSION_BASES: dict[str, dict[str, Any]] = {  # configs of the shared family, trained by `kirchhoffnet train`
    "ring": {
        "task": "diffusion",
        "data": "ring",
        "name": "tinyring",
        "threads": 1,
        "model": {"kind": "crossbar", "width": 8},
        **_SCORE_TRAIN,
        "evaluate": {"num_samples": 200, "prog_noise_levels": [0.0, 0.1], "chips": 1, "robustness_steps": 10},
        "analog": {"steps": 10},
    },
    "ringk": {
        "task": "diffusion",
        "data": "ring",
        "name": "tinyringk",
        "threads": 1,
        "model": {"kind": "kirchhoffnet", "hidden": 3, "time_nodes": 2, "repeat": 1, "device": "ShiftTanh2"}
        | {"settle_steps": 2},
        **_SCORE_TRAIN,
        "evaluate": {"num_samples": 200},
    },
}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Values that pass most range checks yet push the runtime: tiny and huge magnitudes, huge counts.
STRESS: list[Any] = [1e-30, 1e30, 1e300, 1e-300, 5e-324, 1e-12, 1e12, 1e308, 2**31, 10**9, 10**12, 10**15, 0.5, 1]
STRESS_KEYS: dict[str, list[Any]] = {
    "step_size": [1e-12, 1e-9, 1e30, 1e300],
    "times": [[0.0, 1e300], [0.0, 1e-30], [0.0, 1e30], [1e300, 1e301]],
    "capacitance": [1e-30, 1e30, 5e-324],
    "beta_max": [1e308, 1e30, 1e6],
    "beta_min": [1e-300, 1e-30],
    "width": [10**9, 10**6],
    "steps": [10**12, 10**9],
    "hidden": [10**9, 10**6],
    "train_size": [10**10, 10**8],
    "test_size": [10**10],
    "n_samples": [10**10],
    "batch_size": [10**9, 10**12],
    "num_nodes": [10**6, 10**9],
    "repeat": [[10**6, 10**6], [1, 10**9]],
    "lr": [1e30, 1e-300],
    "max_steps": [10**15],
    "rtol": [1e-300, 1e30],
    "num_samples": [10**10],
    "integration_time_s": [1e-300, 1e300],
}


# ---- configs that validate but stress the runtime, and hostile text ----


def stress_config(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one to three leaves pushed to an extreme (targeted keys first) or a bad value."""
    data = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        leaves = [p for p in paths(data) if not isinstance(_parent(data, p)[p[-1]], dict)]
        targeted = [p for p in leaves if str(p[-1]) in STRESS_KEYS or str(p[-1]) in TARGETED]
        path = rng.choice(targeted if targeted and rng.random() < 0.7 else leaves)
        key = str(path[-1])
        pool = STRESS_KEYS.get(key) or TARGETED.get(key) or STRESS + BAD_NUMBERS
        if rng.random() < 0.2:
            pool = STRESS + BAD_NUMBERS
        _parent(data, path)[path[-1]] = copy.deepcopy(rng.choice(pool))
    return data


def override(rng: random.Random, base: dict[str, Any]) -> str:
    """One ``--set key=value`` text aimed at a numeric leaf (or an unknown key, or no ``=``)."""
    leaves = [p for p in paths(base) if isinstance(_parent(base, p)[p[-1]], int | float)]
    path = ".".join(str(part) for part in rng.choice(leaves))
    value = rng.choice(["1e300", "1e-30", "nan", "-inf", "-5", "0", "1e309", "[1,2]", "{a: 1}", "x" * 300, ""])
    return rng.choice([f"{path}={value}", f"{path}={value}", f"no.such.key={value}", path, f"={value}", "a=b=c"])


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def hostile_text(rng: random.Random, valid: str) -> bytes:
    """A config file's bytes, broken as text: bombs, nesting, encodings, sizes, garbage."""
    kind = rng.choice(["alias-bomb", "deep", "non-utf8", "huge", "random", "empty", "invalid", "nul", "tabs"])
    if kind == "alias-bomb":  # 1 KB that expands to 9^9 list items under a typed key
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
        key = rng.choice(["seed", "train", "task", "name", "circuit"])
        return (valid + "\n" + "\n".join(lines) + f"\n{key}: *a8\n").encode()
    if kind == "deep":
        depth = rng.choice([200, 2000, 50_000])
        return (valid + "\nextra: " + "[" * depth + "]" * depth + "\n").encode()
    if kind == "non-utf8":
        raw = valid.encode()
        at = rng.randrange(len(raw))
        return raw[:at] + rng.choice([b"\xff\xfe", b"\x80", b"\xc3\x28", b"\xed\xa0\x80"]) + raw[at:]
    if kind == "huge":
        return valid.encode() + b"#" + b"x" * rng.choice([2_000_000, 30_000_000]) + b"\n"
    if kind == "random":
        return rng.randbytes(rng.choice([1, 64, 4096]))
    if kind == "empty":
        return rng.choice([b"", b"\n", b"---\n", b"null\n", b"[]\n", b"3\n", b"- a\n- b\n"])
    if kind == "invalid":
        return (
            valid + rng.choice(["\n{[", "\nkey: [unclosed\n", "\n  bad: indent\n x", "\n: :\n", "\n*nope\n"])
        ).encode()
    if kind == "nul":
        return re.sub(r"^name: .*$", lambda _: 'name: "a\\0b"', valid, count=1, flags=re.M).encode()  # an escaped NUL
    return valid.replace("  ", "\t").encode()


# ---- run directories ----


def _tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})  # noqa: SIM118


def hostile_safetensors(rng: random.Random, path: Path) -> str:
    """Rewrite a valid safetensors file with hostile contents (indices, values, shapes, dtypes, spec)."""
    tensors, meta = _tensors(path)
    name = rng.choice(sorted(tensors))
    indices = [k for k in tensors if k.endswith("edge_index")]
    caps = [k for k in tensors if k.endswith("capacitance")]
    kind = rng.choice(["index", "capacitance", "values", "shape", "dtype", "drop", "spec", "meta"])
    if kind == "index" and indices:
        name = rng.choice(indices)
        t = tensors[name].clone()
        t.view(-1)[rng.randrange(t.numel())] = rng.choice([-1, 99, 2**40, -(2**62)])
        tensors[name] = t
    elif kind == "capacitance" and caps:
        name = rng.choice(caps)
        tensors[name] = torch.full_like(tensors[name], rng.choice([math.nan, -1.0, 0.0, 1e-30, math.inf, 1e38]))
    elif kind in ("values", "index", "capacitance"):
        t = tensors[name].clone().float()
        t.view(-1)[rng.randrange(max(1, t.numel()))] = rng.choice([math.nan, math.inf, -math.inf, 3e38])
        tensors[name] = t.to(tensors[name].dtype) if tensors[name].is_floating_point() else t
    elif kind == "shape":
        t = tensors[name]
        tensors[name] = rng.choice([t.reshape(-1), t.reshape(-1)[: max(0, t.numel() - 1)], t.unsqueeze(0), t[..., :0]])
    elif kind == "dtype":
        tensors[name] = tensors[name].to(rng.choice([torch.int8, torch.float64, torch.bool, torch.float16]))
    elif kind == "drop":
        del tensors[name]
    elif kind == "spec":
        spec = json.loads(meta.get("spec", "{}"))
        meta["spec"] = rng.choice([json.dumps(mutate_document(rng, spec)), "[1, 2]", "{", "null", '"x"', ""])
    else:
        meta[rng.choice(["format", "metadata"])] = rng.choice(["{", "[]", "kirchhoffnet-checkpoint-99", '{"task": 3}'])
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    _sort_header(path)
    return f"safetensors:{kind}:{name}"


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys sorted. safetensors (Rust) writes the metadata from a
    HashMap whose iteration order is seeded per map, so the same call wrote different bytes and a case
    was not rebuilt identically from its seed; the tensors' data and offsets stay as they are."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    if isinstance(header.get("__metadata__"), dict):
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(dict(sorted(header.items())), separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as safetensors writes it
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])


def mutate_document(rng: random.Random, data: Any) -> Any:
    """A JSON/YAML document (spec, metrics, config) with one to three leaves or sections replaced."""
    data = copy.deepcopy(data)
    hostile: list[Any] = [None, "x", -5, 1e300, math.nan, [], {}, [1, "a"], True, 10**30, {"a": [None]}]
    for _ in range(rng.randint(1, 3)):
        found = paths(data)
        if not found:
            return rng.choice(hostile)
        path = rng.choice(found)
        parent = _parent(data, path)
        if rng.random() < 0.25:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(hostile))
    return data


def hostile_checkpoint(rng: random.Random, path: Path) -> str:
    """``checkpoint.pt`` re-saved by ``torch.save`` with hostile plain contents."""
    state = torch.load(path, weights_only=True)
    key = rng.choice(sorted(state))
    kind = rng.choice(["history", "step", "type", "drop", "model", "optimizer", "status"])
    if kind == "history":
        state["history"] = rng.choice([{}, None, [], {"epoch": [math.nan]}, {"val_loss": "x"}, {"epoch": 5}])
    elif kind == "step":
        state[rng.choice(["step", "epoch", "batch_in_epoch"])] = rng.choice([-5, 10**18, "x", 1.5, None, math.nan])
    elif kind == "type":
        state[key] = rng.choice([None, "x", 3, [], {}, torch.zeros(2)])
    elif kind == "drop":
        del state[key]
    elif kind == "model" and isinstance(state.get("model"), dict) and state["model"]:
        name = rng.choice(sorted(state["model"]))
        t = state["model"][name]
        state["model"][name] = rng.choice([t.reshape(-1)[:1], torch.full_like(t, math.nan), t.to(torch.float64)])
        if name.endswith("edge_index"):
            state["model"][name] = torch.full_like(t, rng.choice([-1, 99]))
    elif kind == "optimizer":
        state["optimizer"] = rng.choice([{}, {"state": {}, "param_groups": []}, {"state": {0: {"step": "x"}}}])
    else:
        state["status"] = rng.choice(["finished", "running", "???", 3])
    torch.save(state, path)
    return f"checkpoint:{kind}:{key}"


def break_file(rng: random.Random, path: Path, outside: Path) -> str:
    """One hostile change to the file ``path`` of a run directory; returns what was done."""
    raw = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
    kind = rng.choice(["delete", "truncate", "random", "flip", "non-utf8", "symlink", "contents", "contents"])
    if kind == "delete":
        path.unlink()
    elif kind == "truncate":
        path.write_bytes(raw[: rng.choice([0, 1, 8, len(raw) // 2, max(0, len(raw) - 1)])])
    elif kind == "random":
        path.write_bytes(rng.randbytes(rng.choice([0, 7, 64, 4096])))
    elif kind == "flip" and raw:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
    elif kind == "non-utf8":
        at = rng.randrange(len(raw) + 1)
        path.write_bytes(raw[:at] + b"\xff\xfe\x80" + raw[at:])
    elif kind == "symlink":
        path.unlink()
        target = rng.choice(["/dev/zero", "/dev/null", "victim.txt", "missing-file", ".", "/"])
        # A user's file and a dangling name both lie in outside/, which the touched-outside check watches, so
        # a write through the link is caught there (a bare "missing-file" would be resolved against the
        # harness's working directory: a write through it once landed in the repository). "." is the run
        # directory itself.
        in_outside = target in ("victim.txt", "missing-file")
        os.symlink(os.path.relpath(outside / target, path.parent) if in_outside else target, path)
        kind = f"symlink->{target}"
    else:
        kind = _hostile_contents(rng, path)
    return f"{path.name}:{kind}"


def _hostile_contents(rng: random.Random, path: Path) -> str:
    """A valid container of its kind with hostile contents (random bytes if it is no longer one)."""
    try:
        return _rewrite(rng, path)
    except Exception:  # an earlier mutation already broke the container
        path.write_bytes(rng.randbytes(64))
        return "bytes"


def _rewrite(rng: random.Random, path: Path) -> str:
    if path.suffix == ".safetensors":
        return hostile_safetensors(rng, path)
    if path.suffix == ".pt":
        return hostile_checkpoint(rng, path)
    if path.suffix == ".json":
        document = json.loads(path.read_text())
        if rng.random() < 0.3:
            path.write_text(
                rng.choice(['{"status": "finished", "test": NaN}', "[]", "null", '"x"', "{", '{"a": 1e999}'])
            )
            return "json-literal"
        path.write_text(json.dumps(mutate_document(rng, document)))
        return "json-document"
    if path.suffix == ".yaml":
        document = yaml.safe_load(path.read_text())
        if rng.random() < 0.4:
            path.write_bytes(hostile_text(rng, path.read_text()))
            return "yaml-text"
        path.write_text(dump(stress_config(rng, document) if rng.random() < 0.5 else mutate_document(rng, document)))
        return "yaml-document"
    path.write_bytes(rng.randbytes(32))
    return "bytes"


def hostile_run_dir(rng: random.Random, run_dir: Path, outside: Path, others: list[Path]) -> list[str]:
    """Break a copied run directory in one to three ways: its files, swapped files, planted links."""
    done: list[str] = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        files = sorted(p for p in run_dir.iterdir() if p.is_file() and not p.is_symlink())
        choice = rng.random()
        if choice < 0.12 and others:  # a file of another kind of run (diffusion model into a training run, ...)
            donor = rng.choice(others)
            name = rng.choice(sorted(p.name for p in donor.iterdir() if p.is_file()))
            (run_dir / name).unlink(missing_ok=True)
            (run_dir / name).write_bytes((donor / name).read_bytes())
            done.append(f"swap:{donor.name}/{name}")
        elif choice < 0.2:  # the run lock, or a temporary file's name, planted as a link to a user's file
            name = rng.choice([".lock", ".lock", ".checkpoint.pt.tmp", ".model.safetensors.tmp", "metrics.json"])
            (run_dir / name).unlink(missing_ok=True)
            os.symlink(os.path.relpath(outside / "victim.txt", run_dir), run_dir / name)
            done.append(f"plant:{name}->outside")
        elif files:
            done.append(break_file(rng, rng.choice(files), outside))
    return done
