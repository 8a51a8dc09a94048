"""One hostile case per number: a leaf command, its arguments, and the sandbox files it reads.

``make_case(seed, number, root, bases)`` is deterministic: the same seed and number build the same
sandbox under ``root`` (``sandbox/`` is the working directory; ``outside/`` holds files no command
may touch; ``bin/`` a fake ngspice; ``tmp/`` is TMPDIR), so a failure is reproduced from its id.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kirchhoffnet.io._lock import LOCK

from .hostile import DIFFUSION_BASES, TRAINING_BASES, dump, hostile_run_dir, hostile_text, override, stress_config

# Each leaf command: the base runs it accepts, options that keep it cheap, and where it writes; "words" are
# its arguments where they are not the name's words ("train (diffusion)": `train` given a diffusion config).
COMMANDS: dict[str, dict[str, Any]] = {
    "train": {"bases": ["flow", "reg", "cls"], "cheap": [], "out": "dir"},
    "train (diffusion)": {"bases": ["ring", "ringk"], "words": ["train"], "cheap": [], "out": "dir"},
    "eval": {"bases": ["flow", "reg", "cls"], "cheap": [], "out": "dir"},
    "sample": {"bases": ["flow"], "cheap": ["-n", "16"], "out": "dir"},
    "report": {"bases": ["flow", "reg", "cls"], "many": True, "cheap": [], "out": "dir"},
    "spice export": {"bases": ["flow", "reg", "mos"], "model": True, "cheap": ["--samples", "1"], "out": "file"},
    "spice verify": {
        "bases": ["flow", "reg", "mos"],
        "model": True,
        "cheap": ["--samples", "1", "--jobs", "1"],
        "out": None,
    },
    "spice iv": {"bases": ["mos"], "model": True, "cheap": ["--edges", "2"], "out": None},
    "hw report": {"bases": ["flow", "reg"], "model": True, "cheap": ["--samples", "4", "--points-per-slice", "5"]},
    "hw montecarlo": {
        "bases": ["flow", "reg", "cls"],
        "model": True,
        "many": True,
        "cheap": ["--trials", "2", "--points", "16", "--sigma", "0.1"],
    },
    "hw quantize": {"bases": ["flow", "reg"], "model": True, "many": True, "cheap": ["--bits", "2", "--points", "16"]},
    "hw noise": {"bases": ["flow", "reg"], "model": True, "cheap": ["--samples", "4", "--capacitance", "1fF"]},
    "diffusion sample": {"bases": ["ring", "ringk"], "cheap": ["-n", "16", "--steps", "5"], "out": "file"},
    "diffusion evaluate": {"bases": ["ring"], "cheap": [], "out": None},
    "diffusion compare": {"bases": ["ring-eval"], "many": True, "cheap": [], "out": "file"},
    "diffusion speed-energy": {"bases": ["ring"], "cheap": ["--batch", "16"], "out": None},
    "diffusion spice": {"bases": ["ringk"], "cheap": ["--samples", "1"], "out": "dir"},
}
for _name, _spec in COMMANDS.items():
    _spec.setdefault("out", "dir")
    _spec.setdefault("words", _name.split())
TRAIN_COMMANDS = ("train", "train (diffusion)")
SPICE = {"spice export", "spice verify", "spice iv", "diffusion spice"}
BIG = "1000000000"
OPTIONS: dict[str, list[list[str]]] = {
    "train": [["--seed", "-1"], ["--device", "cuda"], ["--device", "bogus"], ["--resume"], ["--seed", str(2**70)]],
    "eval": [["--samples", "0"], ["--batch", "-1"], ["--samples", BIG]],
    "sample": [["-n", "0"], ["-n", "10000000000"], ["--seed", "-1"], ["--seed", str(2**70)]],
    "report": [["--out", ""]],
    "spice export": [
        ["--reltol", "nan"],
        ["--reltol", "-1"],
        ["--max-step", "0"],
        ["--max-step", "nan"],
        ["--max-step", "1e300"],
        ["--samples", BIG],
        ["--seed", "-1"],
        ["--dialect", "bogus"],
        ["--dialect", "spectre", "--transistors"],
    ],
    "spice verify": [
        ["--max-error", "nan"],
        ["--max-error", "inf"],
        ["--max-error", "-1"],
        ["--reltol", "nan"],
        ["--max-step", "1e-300"],
        ["--samples", BIG],
        ["--points", BIG],
        ["--transistors"],
    ],
    "spice iv": [
        ["--drop", "nan"],
        ["--drop", "1e300"],
        ["--edges", BIG],
        ["--model-card", "../outside/victim.txt"],
        ["--model-card", "missing.card"],
        ["--model-name", ""],
        ["--model-card", "garbage.card"],
    ],
    "hw report": [["--capacitance", c] for c in ["0F", "nanF", "-1pF", "1e300F", "abc", "1e-300F"]]
    + [["--conductance", "0S"], ["--voltage", "0V"], ["--voltage", "fit"], ["--supply", "1V,-1V"], ["--supply", "nan"]]
    + [["--temperature", "1e300"], ["--settling", "1e300"], ["--points-per-slice", BIG], ["--samples", BIG]],
    "hw montecarlo": [["--threshold", t] for t in ["nan", "inf", "-inf"]]
    + [["--sigma", s] for s in ["nan", "-0.1", "1e300", ",", "0"]]
    + [["--kind", "bogus"], ["--kind", "all"], ["--trials", BIG], ["--points", BIG], ["--dataset", "nope"]],
    "hw quantize": [["--bits", b] for b in ["0", "-1", "64", "1000", "nan", "1.5"]]
    + [["--scheme", "bogus"], ["--points", BIG], ["--scheme", "lut"]],
    "hw noise": [["--dt", d] for d in ["1e-9", "0", "nan", "-1", "1e300", "inf"]]
    + [["--capacitance", c] for c in ["0F", "1e-300F", "nanF"]]
    + [["--temperature", "1e300"], ["--samples", BIG], ["--voltage", "nanV"], ["--read", "1"], ["--points", BIG]],
    "train (diffusion)": [
        ["--seed", "-1"],
        ["--seed", str(2**70)],
        ["--device", "bogus"],
        ["--resume"],
        ["--set", "data=bogus"],
        ["--set", "latent={vae_epochs: 1}"],  # a latent section for ring data
        ["--set", "model.kind=bogus"],
        ["--set", "model.kind=kirchhoffnet"],  # the other kind's settings are unknown keys
        ["--set", "model=null"],
        ["--set", "train.epochs=1e300"],
        ["--set", "train.ema_decay=1.5"],
        ["--set", "sde.beta_max=1e308"],
        ["--set", "model.width=1000000000"],
        ["--set", "score_matching.label_dropout=1"],
        ["--set", "score_matching.init_from=../outside"],
        ["--set", "score_matching.noise_aware={std: 0.1, draws: 3}"],
    ],
    "diffusion sample": [["--steps", BIG], ["-n", BIG], ["--guidance", "nan"], ["--prog-noise", "1e300"]]
    + [["--label", "-1"], ["--label", "99"], ["--solver", "bogus"], ["--verify-tolerance", "0"], ["--chip", "-1"]]
    + [["--solver", s] for s in ["euler", "pf-ode", "analog-ode"]]
    + [["--read-noise", "1e300"], ["--read-noise", "nan"], ["--solver", "pf-ode", "--read-noise", "0.1"]],
    "diffusion evaluate": [
        ["--verify-tolerance", "0"],
        ["--verify-tolerance", "1e300"],
        ["--robustness-only"],
        ["--read-noise", "2"],
        ["--read-noise", "nan"],
    ],
    "diffusion compare": [["--out", "x.unknown"], ["--out", "x"], ["--out", ".png"]],
    "diffusion speed-energy": [
        ["--batch", "1000000000000"],
        ["--solver", "bogus"],
        ["--assume", "drive_hold_s=-1"],
        ["--assume", "digital_power_w=nan"],
        ["--assume", "nope=1"],
        ["--assume", "x"],
        ["--assume", "digital_power_w=-1"],
        ["--assume", "digital_power_w=1e309"],
    ],
    "diffusion spice": [["--hidden-capacitance", "1e300"], ["--guidance", "nan"], ["--samples", BIG], ["--seed", "-1"]],
}
FAMILIES = [("clean", 4), ("rundir", 34), ("config", 12), ("text", 8), ("options", 15), ("out", 10), ("fault", 11)]
FAMILIES += [("simulator", 6)]
FAULTS = ["erofs", "eacces", "enospc", "fsize"]
FAKE_NGSPICE = ["nan", "truncated", "garbage", "fail"]


@dataclass
class Case:
    """What a case runs: the arguments (relative to ``sandbox/``), injected faults, files to protect."""

    number: int
    command: str
    family: str
    args: list[str]
    done: list[str] = field(default_factory=list)
    fault: dict[str, Any] | None = None
    fake_ngspice: str | None = None
    protected: list[str] = field(default_factory=list)  # relative to the case root; must stay unchanged

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _layout(root: Path) -> tuple[Path, Path]:
    if root.exists():
        shutil.rmtree(root)
    sandbox, outside = root / "sandbox", root / "outside"
    for folder in (sandbox, outside / "dir", root / "tmp", root / "bin"):
        folder.mkdir(parents=True)
    (outside / "victim.txt").write_text("a user's file outside every run directory\n")
    (outside / "dir" / "keep.txt").write_text("keep\n")
    return sandbox, outside


def _copy_base(bases: Path, name: str, target: Path) -> Path:
    shutil.copytree(bases / name, target, symlinks=True)
    return target


def _fake_ngspice(root: Path, mode: str) -> None:
    """A script named ngspice: runs the real one (if any), then spoils its raw file the ``mode`` way."""
    real = shutil.which("ngspice") or ""
    script = root / "bin" / "ngspice"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, subprocess, sys\n"
        f"real, mode = {real!r}, {mode!r}\n"
        "rc = subprocess.call([real, *sys.argv[1:]]) if real else 0\n"
        "if mode == 'fail':\n    sys.stderr.write('Error: fake failure\\n'); sys.exit(1)\n"
        "raw = 'out.raw'\n"
        "data = open(raw, 'rb').read() if os.path.exists(raw) else b'Title: x\\nNo. Variables: 1\\nBinary:\\n'\n"
        "head, sep, body = data.partition(b'Binary:\\n')\n"
        "if mode == 'nan':\n    body = b'\\xff' * len(body)\n"
        "elif mode == 'truncated':\n    body = body[: len(body) // 2 + 3]\n"
        "else:\n    head, body = head.replace(b'No. Points:', b'No. Points: -7 #'), b'\\x00' * 5\n"
        "open(raw, 'wb').write(head + sep + body)\n"
        "sys.exit(rc)\n"
    )
    script.chmod(0o755)


def _hostile_out(rng: random.Random, sandbox: Path, outside: Path, kind: str, case: Case) -> str:
    """A hostile --out for a command writing a file or a directory; records what must survive."""
    hazard = rng.choice(["existing-file", "under-file", "dangling", "long", "planted-tmp", "existing-run", "dot"])
    if hazard == "existing-file":
        (sandbox / "taken").write_text("user data\n")
        if kind == "dir":
            case.protected.append("sandbox/taken")
        out = "taken"
    elif hazard == "under-file":
        (sandbox / "afile").write_text("user data\n")
        case.protected.append("sandbox/afile")
        out = "afile/sub" + ("/x.out" if kind == "file" else "")
    elif hazard == "dangling":
        os.symlink("missing/dir", sandbox / "dangling")
        out = "dangling"
    elif hazard == "long":
        out = "n" * rng.choice([256, 300, 5000])
    elif hazard == "dot":  # the working directory itself (a user-chosen folder outside is a legitimate --out)
        out = "." if kind == "dir" else "./"
    else:  # a folder holding a user's files, hidden temporary-looking ones included
        folder = sandbox / "out"
        folder.mkdir(exist_ok=True)
        for name in (".user.tmp", ".model.safetensors.tmp", ".checkpoint.pt.tmp", "notes.txt"):
            (folder / name).write_text(f"user file {name}\n")
            case.protected.append(f"sandbox/out/{name}")
        out = "out" if kind == "dir" else "out/net.cir"
    case.done.append(f"out:{hazard}")
    return out


def make_case(seed: int, number: int, root: Path, bases: Path) -> Case:
    """Build case ``number`` of sweep ``seed`` under ``root`` (cleared first)."""
    rng = random.Random(f"{seed}:{number}")
    command = sorted(COMMANDS)[number % len(COMMANDS)]
    spec = COMMANDS[command]
    family = rng.choices([f for f, _ in FAMILIES], weights=[w for _, w in FAMILIES])[0]
    sandbox, outside = _layout(root)
    words = spec["words"]
    case = Case(number, command, family, list(words))
    available = [b for b in spec["bases"] if (bases / b).is_dir()] or ["flow"]
    base = rng.choice(available)
    others = [bases / b for b in ("flow", "reg", "ring", "ringk") if b != base and (bases / b).is_dir()]
    takes_config = command in TRAIN_COMMANDS
    configs = TRAINING_BASES if command == "train" else DIFFUSION_BASES
    if family == "simulator" and command not in SPICE:
        family = case.family = "options"
    if family in ("config", "text") and not takes_config:
        family = case.family = "rundir"
    inputs: list[str] = []
    extra: list[str] = list(spec["cheap"])
    default_out = False
    if takes_config:
        data = configs[base if base in configs else next(iter(configs))]
        text = dump(data)
        if family == "config":
            if rng.random() < 0.6:
                text = dump(stress_config(rng, data))
            else:
                extra += ["--set", override(rng, data)]
            case.done.append("config")
        elif family == "text":
            (sandbox / "config.yaml").write_bytes(hostile_text(rng, text))
            case.done.append("config:text")
        elif family == "out" and rng.random() < 0.5:  # the default runs/NAME
            name = rng.choice(["../../escape", "../escape", str(outside / "pwned"), "a\x00b", "n" * 300, "", ".."])
            text = dump({**data, "name": name})
            default_out = True  # no --out: the name decides the folder
            case.done.append(f"name:{name[:20]!r}")
        if family != "text":
            (sandbox / "config.yaml").write_text(text)
        inputs = ["config.yaml"]
        if family == "rundir":  # a damaged run: resumed, or the --out a new run must not overwrite
            run = _copy_base(bases, base, sandbox / "run")
            case.done += hostile_run_dir(rng, run, outside, others)
            if command == "train" or rng.random() < 0.5:
                inputs, extra = ["run"], [*extra, "--resume"]
            else:
                case.protected += [  # the run's files, less its lock: the lock file is the trainer's to take
                    f"sandbox/run/{p.name}"
                    for p in run.iterdir()
                    if p.is_file() and not p.is_symlink() and p.name != LOCK
                ]
            extra += ["--out", "run"]
    else:
        count = rng.choice([1, 1, 2]) if spec.get("many") else 1
        for k in range(count):
            run = _copy_base(bases, base if k == 0 else rng.choice(available), sandbox / f"run{k}")
            if family == "rundir" and (k == 0 or rng.random() < 0.5):
                case.done += hostile_run_dir(rng, run, outside, others)
            as_file = spec.get("model") and rng.random() < 0.3
            inputs.append(f"run{k}/model.safetensors" if as_file else f"run{k}")
    if family == "options" and OPTIONS.get(command):
        extra += rng.choice(OPTIONS[command])
        (sandbox / "garbage.card").write_bytes(rng.randbytes(200))
        _hostile_inputs(rng, sandbox, command, extra)
        case.done.append("options")
    if family == "simulator":
        case.fake_ngspice = rng.choice(FAKE_NGSPICE)
        _fake_ngspice(root, case.fake_ngspice)
    out_kind = spec["out"]
    out = None
    if out_kind and "--out" not in extra and not default_out:
        if family == "out":
            out = _hostile_out(rng, sandbox, outside, out_kind, case)
        elif not (takes_config and rng.random() < 0.3):  # sometimes the default runs/NAME
            out = "result" if out_kind == "dir" else "result.out"
        if out is not None:
            extra += ["--out", out]
    if command in ("spice verify", "spice iv") and rng.random() < 0.5:
        extra += ["--json", "out.json"] if family != "out" else ["--json", rng.choice(["afile/x.json", "n" * 300, "."])]
    if family == "fault":
        kind = rng.choice(FAULTS)
        case.fault = {"kind": kind, "after": rng.choice([0, 1, 2, 4, 8]), "bytes": rng.choice([0, 512, 20_000])}
        case.done.append(f"fault:{kind}")
    case.args = [*words, *inputs, *extra]
    return case


def _hostile_inputs(rng: random.Random, sandbox: Path, command: str, extra: list[str]) -> None:
    """hw commands with --inputs: a hostile .npy (NaN, wrong shape, pickled objects, lying header)."""
    if not command.startswith("hw ") or command in ("hw montecarlo", "hw quantize") or rng.random() < 0.5:
        return
    kind = rng.choice(["nan", "shape", "object", "header", "empty"])
    path = sandbox / "inputs.npy"
    if kind == "nan":
        np.save(path, np.full((4, 2), np.nan, dtype=np.float32))
    elif kind == "shape":
        np.save(path, np.zeros((2, 3, 4), dtype=np.float32))
    elif kind == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "header":
        np.save(path, np.zeros((4, 2), dtype=np.float32))
        raw = path.read_bytes().replace(b"(4, 2)", b"(10000000000, 2)")
        path.write_bytes(raw)
    else:
        path.write_bytes(b"")
    extra += ["--inputs", "inputs.npy"]
