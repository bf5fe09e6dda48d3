"""ShapesNet: edgekit's small demo detector, trained by the project on the synthetic shapes dataset.

It exists so the quickstart runs a real, trained model with no download. It is anchor-free on one
stride-8 level (FPN features from strides 8-32): each cell predicts class logits and its distances to
the box sides. In export form it emits the edgekit contract: normalized xyxy `boxes` and `scores`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Module):
    """Conv2d without bias, BatchNorm, SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Residual(nn.Module):
    """Two 3x3 ConvBNs with a skip connection."""

    def __init__(self, c: int):
        super().__init__()
        self.cv1 = ConvBN(c, c)
        self.cv2 = ConvBN(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class ShapesNet(nn.Module):
    """The demo detector; `export = True` switches the output to the edgekit contract."""

    stride = 8

    def __init__(self, nc: int = 3):
        super().__init__()
        self.nc = nc
        self.stem = ConvBN(3, 16, 3, 2)
        self.s4 = ConvBN(16, 24, 3, 2)
        self.s8 = nn.Sequential(ConvBN(24, 48, 3, 2), Residual(48))
        self.s16 = nn.Sequential(ConvBN(48, 96, 3, 2), Residual(96))
        self.s32 = nn.Sequential(ConvBN(96, 128, 3, 2), Residual(128))
        self.lat16 = ConvBN(128 + 96, 96, 1)
        self.lat8 = nn.Sequential(ConvBN(96 + 48, 48, 1), Residual(48))
        self.cls = nn.Sequential(ConvBN(48, 48), nn.Conv2d(48, nc, 1))
        self.reg = nn.Sequential(ConvBN(48, 48), nn.Conv2d(48, 4, 1))
        self.export = False
        nn.init.constant_(self.cls[-1].bias, -4.6)  # prior probability 0.01

    def features(self, x: torch.Tensor) -> torch.Tensor:
        p8 = self.s8(self.s4(self.stem(x)))
        p16 = self.s16(p8)
        p32 = self.s32(p16)
        f16 = self.lat16(torch.cat([F.interpolate(p32, scale_factor=2.0, mode="nearest"), p16], 1))
        return self.lat8(torch.cat([F.interpolate(f16, scale_factor=2.0, mode="nearest"), p8], 1))

    def forward(self, x: torch.Tensor):
        feat = self.features(x)
        h, w = feat.shape[2:]
        logits = self.cls(feat).flatten(2).transpose(1, 2)  # [B, A, nc]
        dist = F.softplus(self.reg(feat).flatten(2).transpose(1, 2)) * self.stride  # [B, A, 4] l,t,r,b pixels
        boxes = distance_to_boxes(anchor_centers(h, w, self.stride, x.dtype, x.device), dist)
        if not self.export:
            return logits, boxes
        size = torch.tensor([x.shape[3], x.shape[2], x.shape[3], x.shape[2]], dtype=x.dtype, device=x.device)
        return boxes / size, logits.sigmoid()


def anchor_centers(h: int, w: int, stride: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Cell centers ((grid + 0.5) * stride) of an h x w feature map, row-major, [h*w, 2] as (x, y)."""
    ys = (torch.arange(h, dtype=dtype, device=device) + 0.5) * stride
    xs = (torch.arange(w, dtype=dtype, device=device) + 0.5) * stride
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(-1, 2)


def distance_to_boxes(centers: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """(l, t, r, b) distances from centers to x1, y1, x2, y2 boxes."""
    return torch.cat([centers - dist[..., :2], centers + dist[..., 2:]], -1)
