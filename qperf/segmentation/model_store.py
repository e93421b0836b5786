"""Shipped model files: weights, model card and checksum.

A model is a pair of files in ``models/``: ``<name>.pt`` (a ``torch.save`` dictionary with
``state_dict``, ``net_config`` and ``kind``) and ``<name>.json``, the model card (version,
training configuration, data, measured metrics, and the weights' sha256). The checksum is
verified every time the weights are loaded; a mismatch (corrupted or swapped file) is refused.

The shipped models stay in ``models/`` at the repository root and are installed as the data-only
package ``qperf._models`` (``setup.py`` maps it onto that folder), read with
``importlib.resources`` after any install: a wheel, ``pip install --target``, an editable
install. A source checkout on ``sys.path`` and the Slicer extension, where ``models/`` lies
beside the ``qperf`` folder, are read from there.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path
from typing import Any

import torch

from qperf.errors import FormatError, NotAvailableError
from qperf.segmentation.network import NetConfig, ResUNet

DEFAULT_MODEL = "qperf_seg_v2"


def _models_dir() -> Path:
    """Folder of the shipped models: the installed package ``qperf._models``, else ``models/``
    beside the ``qperf`` folder (a source checkout, Slicer's install tree)."""
    try:
        installed = importlib.resources.files("qperf._models")
    except ModuleNotFoundError:  # not installed: qperf imported from a checkout or Slicer's modules
        installed = None
    if isinstance(installed, Path) and (installed / f"{DEFAULT_MODEL}.json").is_file():
        return installed
    return Path(__file__).resolve().parents[2] / "models"


#: Folder of the shipped models (see :func:`_models_dir`).
MODELS_DIR = _models_dir()


class ModelIntegrityError(FormatError):
    """The weights do not match the checksum recorded in their model card."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve(model: str | Path | None) -> tuple[Path, Path]:
    """Weights and card paths of a model name, weights path, card path or run folder."""
    if model is None:
        model = DEFAULT_MODEL
    p = Path(model)
    if p.is_dir():  # a fine-tuning run folder (qperf train --real)
        weights, card = p / "model.pt", p / "model.json"
    elif p.suffix in (".pt", ".json"):
        weights, card = p.with_suffix(".pt"), p.with_suffix(".json")
    elif p.parent == Path(".") and not p.exists():
        weights, card = MODELS_DIR / f"{p.name}.pt", MODELS_DIR / f"{p.name}.json"
    else:
        weights, card = p.with_suffix(".pt"), p.with_suffix(".json")
    if not weights.exists():
        raise NotAvailableError(f"model: expected weights at {weights}, found no file")
    if not card.exists():
        raise NotAvailableError(f"model: expected a model card at {card}, found no file")
    return weights, card


def read_card(card: str | Path) -> dict[str, Any]:
    """A model card: a JSON object with the weights' ``sha256`` (64 hexadecimal digits)."""
    from qperf.io.schema import parse_json

    try:
        text = Path(card).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"model card {card}: expected JSON text, found an unreadable file ({exc})") from exc
    data = parse_json(text, f"model card {card}")
    if not isinstance(data, dict) or "sha256" not in data:
        raise FormatError(f"model card {card}: expected a 'sha256' entry, found none")
    digest = data["sha256"]
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise FormatError(f"model card {card}: sha256: expected 64 hexadecimal digits, found {digest!r}")
    return data


def load_network(
    model: str | Path | None = None, *, verify: bool = True
) -> tuple[ResUNet, dict[str, Any], dict[str, Any]]:
    """Load a model's network (eval mode, CPU), its card and its saved extras.

    Raises
    ------
    NotAvailableError
        When the files are missing.
    ModelIntegrityError
        When the weights' sha256 differs from the card's.
    """
    weights, card_path = resolve(model)
    card = read_card(card_path)
    if verify:
        digest = sha256_of(weights)
        if digest != card["sha256"]:
            raise ModelIntegrityError(
                f"model weights {weights}: expected sha256 {card['sha256'][:16]}... from {card_path.name}, "
                f"found {digest[:16]}... (corrupted or replaced file; refusing to load)"
            )
    try:
        blob = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors of a file that is not a saved model
        raise FormatError(
            f"model weights {weights}: expected a QPerf segmentation model saved by torch, found a file torch "
            "cannot load (damaged, or not a model)"
        ) from exc
    if not isinstance(blob, dict) or "net_config" not in blob or "state_dict" not in blob:
        raise FormatError(
            f"model weights {weights}: expected a QPerf segmentation model (net_config and state_dict), found "
            f"{type(blob).__name__} {sorted(blob)[:5] if isinstance(blob, dict) else ''}"
        )
    try:
        net = ResUNet(NetConfig.from_dict(blob["net_config"]))
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:  # a configuration or weights of another network
        msg = " ".join(str(exc).split())[:160]
        raise FormatError(f"model weights {weights}: expected a QPerf segmentation model, found {msg}") from exc
    net.eval()
    extras = {k: v for k, v in blob.items() if k not in ("state_dict",)}
    return net, card, extras


def export_model(
    checkpoint: str | Path, name: str, card: dict[str, Any], *, folder: str | Path | None = None, half: bool = False
) -> tuple[Path, Path]:
    """Write ``<name>.pt`` (weights only) and ``<name>.json`` (card with sha256) from a training checkpoint."""
    out = Path(folder) if folder is not None else MODELS_DIR
    out.mkdir(parents=True, exist_ok=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    sd = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state["model"].items()}
    blob = {"state_dict": sd, "net_config": state["net_config"], "kind": card.get("kind", "perfusion_segmentation")}
    weights = out / f"{name}.pt"
    torch.save(blob, weights)
    card = dict(card)
    card["sha256"] = sha256_of(weights)
    card["weights_file"] = weights.name
    card["weights_bytes"] = weights.stat().st_size
    card_path = out / f"{name}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights, card_path
