"""Training of the segmentation network on streamed, randomised phantom slices.

Samples come from :func:`qperf.phantom.stream` (randomised studies generated in memory, never
written to disk) and, optionally, from real annotated cases in a folder; every sample is
randomised again by :mod:`qperf.segmentation.augment`. The run is reproducible from its
:class:`TrainConfig` (seed included), writes ``config.json``, a JSON-lines log of losses and
validation metrics, ``checkpoint.pt`` every few minutes (resumable) and ``best.pt``.

Loss: cross-entropy + soft Dice over the four classes, plus a spatial-softmax cross-entropy for
the two insertion-point heat maps.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from qperf.errors import NotAvailableError, ValidationError
from qperf.phantom.cine import TRAINING_CASES
from qperf.segmentation import preprocessing as pre
from qperf.segmentation.augment import AnnotatedSlice, AugmentConfig, make_sample
from qperf.segmentation.network import NetConfig, ResUNet
from qperf.segmentation.sources import (
    annotated_folder,
    mixed_slices,
    phantom_slices,
    real_like_slices,
    synth_slices,
)


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    seed: int = 0
    max_steps: int = 2000
    max_minutes: float = 95.0
    batch_size: int = 8
    crop_px: int = 96
    lr: float = 2e-3
    weight_decay: float = 1e-4
    pool_size: int = 48
    refresh_every: int = 2
    val_every: int = 100
    n_val_slices: int = 24
    val_seed: int = 900_000
    checkpoint_minutes: float = 5.0
    point_weight: float = 0.1
    dice_weight: float = 1.0
    init_from: str | None = None
    real_folder: str | None = None
    real_fraction: float = 0.3
    synth_fraction: float = 0.7
    cine_path: str | None = None
    cine_fraction: float = 0.35
    synth: dict[str, Any] = field(default_factory=dict)
    n_val_real_like: int = 16
    phantom_options: dict[str, Any] = field(default_factory=dict)
    net: dict[str, Any] = field(default_factory=lambda: NetConfig().to_dict())
    augment: dict[str, Any] = field(default_factory=lambda: asdict(AugmentConfig()))
    threads: int = 2
    device: str = "auto"

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        d = json.loads(Path(path).read_text())
        return cls(**d)


def drawn_mask(drawn: list[frozenset[int]], n_classes: int) -> torch.Tensor:
    """(b, n_classes) 1 where a sample's class was drawn (the background always is)."""
    m = torch.zeros(len(drawn), n_classes)
    m[:, 0] = 1.0
    for i, classes in enumerate(drawn):
        for c in classes:
            if 0 < c < n_classes:
                m[i, c] = 1.0
    return m


def partial_cross_entropy(logits: torch.Tensor, target: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with partial labels (marginal loss, Shi et al., Med Image Anal 2021).

    A pixel labelled 0 in a sample where class ``c`` was not drawn may be background or ``c``:
    its likelihood is the sum of their probabilities. With every class drawn this is the plain
    cross-entropy.
    """
    logp = torch.log_softmax(logits, dim=1)
    merged = (drawn < 0.5).clone()
    merged[:, 0] = True
    background = torch.logsumexp(logp.masked_fill(~merged[:, :, None, None], float("-inf")), dim=1)
    picked = logp.gather(1, target[:, None])[:, 0]
    return -torch.where(target == 0, background, picked).mean()


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, n_classes: int, drawn: torch.Tensor | None = None
) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes (batch-pooled over the samples that drew them)."""
    prob = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, n_classes).permute(0, 3, 1, 2).float()
    w = torch.ones(target.shape[0], n_classes, device=logits.device) if drawn is None else drawn.to(logits.device)
    w = w[:, :, None, None]
    inter = (w * prob * onehot).sum((0, 2, 3))
    denom = (w * prob).sum((0, 2, 3)) + (w * onehot).sum((0, 2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    present = w[:, 1:, 0, 0].sum(0) > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    return 1.0 - dice[1:][present].mean()


def point_loss(heat_logits: torch.Tensor, target: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between a spatial softmax of each heat map and the normalised target map."""
    b, n, h, w = heat_logits.shape
    logp = torch.log_softmax(heat_logits.reshape(b, n, h * w), dim=-1)
    ce = -(target.reshape(b, n, h * w) * logp).sum(-1)
    return (ce * has).sum() / has.sum().clamp(min=1.0)


def compute_loss(
    out: torch.Tensor,
    y: torch.Tensor,
    heat: torch.Tensor,
    has: torch.Tensor,
    cfg: TrainConfig,
    n_classes: int,
    drawn: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy + soft Dice (partial labels when ``drawn`` is given) + insertion-point loss."""
    logits, heat_logits = out[:, :n_classes], out[:, n_classes:]
    if drawn is None:
        ce = F.cross_entropy(logits, y)
    else:
        ce = partial_cross_entropy(logits, y, drawn.to(logits.device))
    dl = soft_dice_loss(logits, y, n_classes, drawn)
    pl = point_loss(heat_logits, heat, has)
    total = ce + cfg.dice_weight * dl + cfg.point_weight * pl
    return total, {"ce": float(ce.detach()), "dice_loss": float(dl.detach()), "point_loss": float(pl.detach())}


class SamplePool:
    """A rolling pool of annotated slices fed by one or more iterators."""

    def __init__(
        self, phantom: Iterator[AnnotatedSlice], real: list[AnnotatedSlice], cfg: TrainConfig, rng: np.random.Generator
    ) -> None:
        self.phantom = phantom
        self.real = real
        self.cfg = cfg
        self.rng = rng
        self.pool: list[AnnotatedSlice] = []
        while len(self.pool) < cfg.pool_size:
            self.pool.append(next(self.phantom))
        self._next = 0

    def refresh(self) -> None:
        self.pool[self._next % len(self.pool)] = next(self.phantom)
        self._next += 1

    def draw(self) -> AnnotatedSlice:
        if self.real and self.rng.random() < self.cfg.real_fraction:
            return self.real[int(self.rng.integers(len(self.real)))]
        return self.pool[int(self.rng.integers(len(self.pool)))]


def make_batch(
    pool: SamplePool, cfg: TrainConfig, aug: AugmentConfig, rng: np.random.Generator, n_classes: int = 4
) -> tuple[torch.Tensor, ...]:
    """Images, labels, heat maps, known points and drawn classes of one batch."""
    xs, ys, hs, has, drawn = [], [], [], [], []
    for _ in range(cfg.batch_size):
        item = pool.draw()
        x, y, h, k = make_sample(item, rng, aug, size=cfg.crop_px)
        xs.append(x)
        ys.append(y)
        hs.append(h)
        has.append(k)
        drawn.append(item.drawn)
    return (
        torch.from_numpy(np.stack(xs)),
        torch.from_numpy(np.stack(ys)),
        torch.from_numpy(np.stack(hs)),
        torch.from_numpy(np.stack(has)),
        drawn_mask(drawn, n_classes),
    )


def validate(
    model: ResUNet, val: list[tuple[NDArray[np.float32], NDArray[np.int64]]], device: torch.device, n_classes: int
) -> dict[str, float]:
    """Per-class Dice (pooled over the validation slices) on the network grid, no augmentation."""
    model.eval()
    inter = np.zeros(n_classes)
    total = np.zeros(n_classes)
    per_slice_myo = []
    with torch.inference_mode():
        for x, y in val:
            out = model(torch.from_numpy(x[None]).to(device))[0, :n_classes]
            pred = out.argmax(0).cpu().numpy()
            for c in range(1, n_classes):
                inter[c] += np.sum((pred == c) & (y == c))
                total[c] += np.sum(pred == c) + np.sum(y == c)
            a, b = pred == 2, y == 2
            per_slice_myo.append(2 * np.sum(a & b) / max(1, a.sum() + b.sum()))
    model.train()
    dice = 2 * inter / np.maximum(total, 1)
    return {
        "val_dice_lv": float(dice[1]),
        "val_dice_myo": float(dice[2]),
        "val_dice_rv": float(dice[3]),
        "val_dice_myo_median": float(np.median(per_slice_myo)),
    }


def _training_source(cfg: TrainConfig, seed: int) -> Iterator[AnnotatedSlice]:
    """Physics-phantom slices (and AIF images) mixed with label-driven synthetic slices."""
    phantom = phantom_slices(seed=seed, **cfg.phantom_options)
    if cfg.synth_fraction <= 0:
        return phantom
    synth = synth_slices(seed, cine_path=cfg.cine_path, cine_fraction=cfg.cine_fraction, **cfg.synth)
    if cfg.synth_fraction >= 1:
        return synth
    return mixed_slices([synth, phantom], [cfg.synth_fraction, 1.0 - cfg.synth_fraction], seed)


def selection_score(record: dict[str, float]) -> float:
    """The validation figure the best checkpoint is chosen by: myocardium Dice on the phantom,
    averaged with that on the real-like slices when there are some."""
    if "val_dice_myo_real_like" in record:
        return 0.5 * (record["val_dice_myo"] + record["val_dice_myo_real_like"])
    return record["val_dice_myo"]


def _validate_all(
    model: ResUNet, val: list[Any], val_real: list[Any], device: torch.device, n: int
) -> dict[str, float]:
    record = validate(model, val, device, n)
    if val_real:
        real = validate(model, val_real, device, n)
        record.update({f"{k}_real_like": v for k, v in real.items()})
    return record


def _device(name: str) -> torch.device:
    from qperf.runtime import resolve_device

    return resolve_device(name)


def _initial_weights(path: str) -> dict[str, Any]:
    """Weights to start from: a training checkpoint (``model``) or an exported model (``state_dict``);
    ``"shipped"`` is the shipped model."""
    from qperf.segmentation.model_store import resolve

    target = resolve(None)[0] if path == "shipped" else Path(path)
    if target.is_dir():
        target = resolve(target)[0]
    try:
        state = torch.load(target, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise NotAvailableError(f"init: expected model weights at {target}, found {exc}") from exc
    weights = state.get("model", state.get("state_dict")) if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise NotAvailableError(f"init: expected a QPerf checkpoint or model at {target}, found neither")
    return weights


class _Run:
    """The state of one training run: network, optimiser, sample pool, validation sets, clock."""

    def __init__(self, cfg: TrainConfig, out: Path, resume: bool, log: Callable[[str], None]) -> None:
        self.cfg, self.out, self.log = cfg, out, log
        from qperf.runtime import set_threads

        self.device = _device(cfg.device)
        set_threads(max(1, cfg.threads))
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.net_cfg = NetConfig.from_dict(cfg.net)
        if self.net_cfg.in_channels != pre.N_CHANNELS:
            raise ValidationError(f"net.in_channels: expected {pre.N_CHANNELS}, found {self.net_cfg.in_channels}")
        self.model = ResUNet(self.net_cfg).to(self.device)
        if cfg.crop_px % self.model.multiple:
            raise ValidationError(f"crop_px: expected a multiple of {self.model.multiple}, found {cfg.crop_px}")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.best, self.elapsed_before = 0, -1.0, 0.0
        self.ckpt_path = out / "checkpoint.pt"
        if resume and self.ckpt_path.exists():
            state = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.step, self.best = int(state["step"]), float(state["best"])
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
            self.rng = np.random.default_rng([cfg.seed, self.step])
            log(f"resumed from {self.ckpt_path} at step {self.step} (best validation score {self.best:.4f})")
        elif cfg.init_from:
            # Warm start: weights only (a new run, new optimiser and schedule).
            self.model.load_state_dict(_initial_weights(cfg.init_from))
            log(f"initialised from the weights of {cfg.init_from}")
        self.t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "best": self.best,
            "elapsed_s": self.elapsed_s(),
            "train_config": asdict(self.cfg),
            "net_config": self.net_cfg.to_dict(),
        }
        torch.save(state, tmp)
        tmp.replace(path)

    def learning_rate(self) -> float:
        """Cosine decay over whichever budget (steps or minutes) runs out first."""
        cfg = self.cfg
        progress = min(1.0, max(self.step / cfg.max_steps, self.elapsed_s() / 60.0 / cfg.max_minutes))
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    def train_step(self, pool: SamplePool, aug: AugmentConfig) -> dict[str, Any]:
        lr = self.learning_rate()
        for g in self.opt.param_groups:
            g["lr"] = lr
        if self.step % self.cfg.refresh_every == 0:
            pool.refresh()
        n_classes = self.net_cfg.n_classes
        x, y, heat, has, drawn = (v.to(self.device) for v in make_batch(pool, self.cfg, aug, self.rng, n_classes))
        loss, parts = compute_loss(self.model(x), y, heat, has, self.cfg, n_classes, drawn)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {
            "step": self.step,
            "loss": float(loss.detach()),
            "lr": lr,
            **parts,
            "elapsed_s": round(self.elapsed_s(), 1),
        }

    def validate(self, sets: dict[str, list[Any]]) -> dict[str, float]:
        """Validation figures of every set (keys suffixed with the set's name) and the selection score."""
        record: dict[str, float] = {}
        for name, val in sets.items():
            if val:
                figures = validate(self.model, val, self.device, self.net_cfg.n_classes)
                record.update({f"{k}{name}": v for k, v in figures.items()})
        score = selection_score(record)
        if score > self.best:
            self.best = score
            self.save(self.out / "best.pt")
        return record


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    log: Callable[[str], None] = print,
    phantom_source: Iterator[AnnotatedSlice] | None = None,
    val_slices: list[AnnotatedSlice] | None = None,
    real_slices: list[AnnotatedSlice] | None = None,
    real_val_slices: list[AnnotatedSlice] | None = None,
) -> Path:
    """Run (or resume) a training run; returns the path of the best checkpoint.

    Parameters
    ----------
    cfg : TrainConfig
    out_dir : path
        Run folder: ``config.json``, ``log.jsonl``, ``checkpoint.pt``, ``best.pt``.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` when it exists.
    phantom_source, val_slices : optional
        Override the phantom stream and the validation slices (tests use small synthetic ones).
    real_slices, real_val_slices : optional
        Annotated real slices drawn with probability ``cfg.real_fraction``, and held-out real
        slices that validate the run (they then choose the best checkpoint); by default the
        cases of ``cfg.real_folder`` (:func:`qperf.segmentation.sources.annotated_folder`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(cfg, out, resume, log)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    aug = AugmentConfig(**cfg.augment)
    source = phantom_source or _training_source(cfg, cfg.seed * 1000 + run.step)
    if real_slices is None and cfg.real_folder:
        real_slices = annotated_folder(cfg.real_folder)
    if cfg.real_folder and not real_slices:
        raise NotAvailableError(f"real_folder: expected annotated cases in {cfg.real_folder}, found none")
    sets = _validation_sets(cfg, val_slices, real_val_slices, synthetic_only=phantom_source is not None)
    pool = SamplePool(source, list(real_slices or []), cfg, run.rng)
    log(f"training on {run.device}, {sum(p.numel() for p in run.model.parameters())} parameters, from step {run.step}")
    last_ckpt = time.monotonic()
    with open(out / "log.jsonl", "a") as log_file:
        while run.step < cfg.max_steps and run.elapsed_s() / 60.0 < cfg.max_minutes:
            record = run.train_step(pool, aug)
            if run.step % cfg.val_every == 0 or run.step == cfg.max_steps:
                record.update(run.validate(sets))
                log(json.dumps(record))
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            if (time.monotonic() - last_ckpt) / 60.0 >= cfg.checkpoint_minutes:
                run.save(run.ckpt_path)
                last_ckpt = time.monotonic()
        final = {"final": True, "step": run.step, **run.validate(sets)}
        log(json.dumps(final))
        log_file.write(json.dumps(final) + "\n")
    run.save(run.ckpt_path)
    if not (out / "best.pt").exists():
        run.save(out / "best.pt")
    return out / "best.pt"


def _validation_sets(
    cfg: TrainConfig,
    val_slices: list[AnnotatedSlice] | None,
    real_val: list[AnnotatedSlice] | None,
    *,
    synthetic_only: bool,
) -> dict[str, list[Any]]:
    """Network-grid validation sets by suffix: the phantom (""), real-like slices of the training
    patients ("_real_like"), held-out real cases ("_real")."""
    if val_slices is None:
        val_iter = phantom_slices(seed=cfg.val_seed, **cfg.phantom_options)
        val_slices = [next(val_iter) for _ in range(cfg.n_val_slices)]
    real_like = (
        real_like_slices(cfg.cine_path, TRAINING_CASES, cfg.n_val_real_like, cfg.val_seed)
        if cfg.cine_path and not synthetic_only
        else []
    )
    aug = AugmentConfig(**cfg.augment)
    vrng = np.random.default_rng(cfg.val_seed)

    def samples(items: list[AnnotatedSlice]) -> list[Any]:
        return [make_sample(v, vrng, aug, size=pre.CROP_PX, augment=False)[:2] for v in items]

    return {"": samples(val_slices), "_real_like": samples(real_like), "_real": samples(list(real_val or []))}
