"""The NMOS and PMOS model cards shipped as package data, and reading a card by shipped name or file.

`cards/README.md` states the cards' origin: generic illustrative values written for kirchhoffnet,
not a foundry process. Each shipped name is a technology with two files: ``NAME.lib`` defines the NMOS
``kn_nmos`` and ``NAME_pmos.lib`` the PMOS ``kn_pmos``; both come with the drawn channel length and
supply voltage they are meant for, which tabulation (`kirchhoffnet.spice.tabulation`) uses as defaults.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.io.paths import shown_path

SHIPPED: dict[str, tuple[float, float]] = {
    "level1_180nm": (180e-9, 1.8),
    "bsim4_180nm": (180e-9, 1.8),
    "bsim4_45nm": (45e-9, 1.0),
}
"""Shipped card name → (drawn channel length in m, supply voltage in V)."""

Transistor = Literal["nmos", "pmos"]
TRANSISTORS: tuple[str, ...] = get_args(Transistor)
"""The transistor types a card's model may be: a tabulated edge is built from either."""
_MAX_CARD_BYTES = 1 << 20  # a model library larger than this is not a card


@dataclass(frozen=True)
class ModelCard:
    """A ``.model`` card's text and what it is for.

    Attributes:
        name: the shipped name, or the file's path.
        text: the card text, as handed to ngspice.
        model_name: the transistor model's name in the card.
        length_m: the drawn channel length it is meant for (None: not stated).
        supply_v: the supply voltage it is meant for (None: not stated).
        transistor: the model's type, ``nmos`` or ``pmos``.
    """

    name: str
    text: str
    model_name: str
    length_m: float | None = None
    supply_v: float | None = None
    transistor: Transistor = "nmos"


def shipped_cards() -> list[str]:
    """Names of the cards shipped with kirchhoffnet."""
    return sorted(SHIPPED)


def load_card(
    card: str | os.PathLike[str], model_name: str | None = None, transistor: Transistor = "nmos"
) -> ModelCard:
    """A shipped card by name (``bsim4_45nm``) or any card file by path.

    Args:
        card: a name from [`shipped_cards`][kirchhoffnet.spice.shipped_cards] or a path.
        model_name: the model to use; by default the card's first ``.model NAME nmos`` (or ``pmos``).
        transistor: ``nmos`` or ``pmos``; for a shipped name it picks the technology's NMOS or PMOS file.

    Raises:
        ConfigError: an unknown name or transistor type, an unreadable file, or no such model in the card.
    """
    if transistor not in TRANSISTORS:
        raise ConfigError(unknown_choice("transistor", transistor, TRANSISTORS))
    text_name = os.fspath(card)
    if text_name in SHIPPED:
        file_name = text_name if transistor == "nmos" else f"{text_name}_{transistor}"
        text = (resources.files("kirchhoffnet.spice") / "cards" / f"{file_name}.lib").read_text()
        length_m, supply_v = SHIPPED[text_name]
        model = _model(text, model_name, file_name, transistor)
        return ModelCard(text_name, text, model, length_m, supply_v, transistor)
    path = Path(text_name)
    if not path.is_file():
        hint = unknown_choice("model card", text_name, SHIPPED)
        raise ConfigError(f"{hint}, or give the path of a card file ({shown_path(path)} is no file)")
    try:
        if path.stat().st_size > _MAX_CARD_BYTES:
            raise ConfigError(f"model card {shown_path(path)} is over {_MAX_CARD_BYTES} bytes; give the card alone")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read model card {shown_path(path)}: {exc}") from None
    return ModelCard(text_name, text, _model(text, model_name, shown_path(path), transistor), transistor=transistor)


def _model(text: str, model_name: str | None, where: str, transistor: Transistor) -> str:
    """The model name to use: the one asked for, which the card must define as ``transistor``, or its first."""
    names = re.findall(rf"^\s*\.model\s+(\S+)\s+{transistor}\b", text, re.IGNORECASE | re.MULTILINE)
    if model_name is None:
        if not names:
            raise ConfigError(f"model card {where} defines no '.model NAME {transistor} (...)'")
        return str(names[0])
    if model_name.lower() not in (n.lower() for n in names):
        raise ConfigError(
            f"model card {where} defines no {transistor.upper()} model {model_name!r}; it defines {names or 'none'}"
        )
    return model_name
