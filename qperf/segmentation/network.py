"""The segmentation network: a residual U-Net with time as channels.

A 2D U-Net whose input channels are the frames of the perfusion series on a fixed temporal
grid (as in Xue et al. 2020), built from residual blocks with batch normalisation and leaky
ReLU. A 1 x 1 "temporal" convolution first mixes the frames into a few feature maps (the
dynamics that tell blood, myocardium and fat apart), which keeps the full-resolution layers
narrow and the network fast on a CPU.

Outputs ``N_CLASSES + N_POINTS`` maps: class logits (background, LV blood pool, myocardium,
RV blood pool) and one heat-map logit per RV insertion point (anterior, inferior).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

N_CLASSES = 4
N_POINTS = 2
POINT_NAMES = ("anterior", "inferior")


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyper-parameters (stored in checkpoints and the model card)."""

    in_channels: int = 40
    temporal_features: int = 16
    widths: tuple[int, ...] = (24, 32, 48, 64)
    blocks: tuple[int, ...] = (1, 1, 2, 2)
    n_classes: int = N_CLASSES
    n_points: int = N_POINTS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["blocks"] = list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        d["blocks"] = tuple(d["blocks"])
        return cls(**d)


class ResBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm and leaky ReLU, plus an identity (or 1 x 1) skip."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip: nn.Module = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        y = self.bn2(self.conv2(y))
        return F.leaky_relu(y + self.skip(x), 0.1)


def _stage(c_in: int, c_out: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(c_in if i == 0 else c_out, c_out) for i in range(max(1, n))])


class ResUNet(nn.Module):
    """Residual U-Net; input ``(b, in_channels, h, w)`` with h, w multiples of 2**(levels-1)."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetConfig()
        cfg = self.config
        self.temporal = nn.Sequential(
            nn.Conv2d(cfg.in_channels, cfg.temporal_features, 1, bias=False),
            nn.BatchNorm2d(cfg.temporal_features),
            nn.LeakyReLU(0.1),
        )
        widths = cfg.widths
        self.down = nn.ModuleList()
        c_prev = cfg.temporal_features
        for w, n in zip(widths, cfg.blocks, strict=True):
            self.down.append(_stage(c_prev, w, n))
            c_prev = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2))
            self.dec.append(_stage(2 * widths[i - 1], widths[i - 1], 1))
        self.head = nn.Conv2d(widths[0], cfg.n_classes + cfg.n_points, 1)

    @property
    def multiple(self) -> int:
        """Spatial size must be a multiple of this."""
        return int(2 ** (len(self.config.widths) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.temporal(x)
        skips = []
        for i, stage in enumerate(self.down):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = stage(h)
            skips.append(h)
        for j, (up, dec) in enumerate(zip(self.up, self.dec, strict=True)):
            h = up(h)
            h = dec(torch.cat([h, skips[-2 - j]], dim=1))
        return self.head(h)


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
