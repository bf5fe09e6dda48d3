"""The building blocks of YOLOv9 / GELAN, with the reference's module and parameter names.

Names (``cv1``, ``conv1``, ``m``, ``dfl2``...) match WongKinYiu/yolov9 so official weights load strictly;
the implementations are edgekit's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.models.fuse import merge_branches


def autopad(k: int, p: int | None = None, d: int = 1) -> int:
    """'Same' padding for an odd kernel `k` with dilation `d`."""
    if p is not None:
        return p
    return (d * (k - 1) + 1) // 2


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + activation (SiLU unless told otherwise)."""

    default_act: nn.Module = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        if act is True:
            self.act = self.default_act
        elif isinstance(act, nn.Module):
            self.act = act
        else:
            self.act = nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class RepConvN(nn.Module):
    """A 3x3 and a 1x1 Conv+BN in parallel, summed; re-parameterizes into one biased 3x3 conv."""

    default_act: nn.Module = nn.SiLU()

    def __init__(self, c1, c2, k=3, s=1, p=1, g=1, d=1, act=True, bn=False, deploy=False):
        super().__init__()
        if k != 3 or p != 1:
            raise ValueError("RepConvN needs k=3, p=1")
        self.act = self.default_act if act is True else act if isinstance(act, nn.Module) else nn.Identity()
        self.conv1 = Conv(c1, c2, k, s, p=p, g=g, act=False)
        self.conv2 = Conv(c1, c2, 1, s, p=p - k // 2, g=g, act=False)

    def forward(self, x):
        if hasattr(self, "conv"):
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    def reparameterize(self) -> None:
        """Replace both branches by the single equivalent 3x3 convolution."""
        if hasattr(self, "conv"):
            return
        self.conv = merge_branches([(self.conv1.conv, self.conv1.bn), (self.conv2.conv, self.conv2.bn)])
        del self.conv1, self.conv2


class ResidualPair(nn.Module):
    """Two convolutions (``cv1`` then ``cv2``, set by subclasses) with a residual when ``add``: the bottleneck
    of YOLOv5/v8 (Ultralytics ``Bottleneck``) and YOLOv9 (``RepNBottleneck``)."""

    cv1: nn.Module
    cv2: nn.Module
    add: bool

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class RepNBottleneck(ResidualPair):
    """RepConvN then Conv, with a residual when shapes allow."""

    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = RepConvN(c1, hidden, k[0], 1)
        self.cv2 = Conv(hidden, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2


class CSP(nn.Module):
    """CSP block: one path through ``n`` bottlenecks (``make_bottleneck(c, c, shortcut, g)``), one straight,
    joined by a 1x1 conv: YOLOv9's ``RepNCSP`` and Ultralytics' ``C3`` (Wang et al., "CSPNet", CVPRW 2020)."""

    def __init__(self, c1, c2, n, e, make_bottleneck):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(make_bottleneck(hidden) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class RepNCSP(CSP):
    """CSP block: one path through n RepNBottlenecks, one straight, joined by a 1x1 conv."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__(c1, c2, n, e, lambda c: RepNBottleneck(c, c, shortcut, g, e=1.0))


class ELAN(nn.Module):
    """ELAN aggregation (YOLOv9, Wang et al. 2024): split ``cv1``'s output in two, run ``cv2`` then ``cv3`` on
    the second half, concatenate every intermediate, 1x1 conv ``cv4``. Subclasses build the four stages."""

    cv1: nn.Module
    cv2: nn.Module
    cv3: nn.Module
    cv4: nn.Module

    def forward(self, x):
        parts = list(self.cv1(x).chunk(2, 1))
        parts.append(self.cv2(parts[-1]))
        parts.append(self.cv3(parts[-1]))
        return self.cv4(torch.cat(parts, 1))


class RepNCSPELAN4(ELAN):
    """GELAN block: split, two stacked RepNCSP+Conv stages, concatenate every intermediate, 1x1 conv."""

    def __init__(self, c1, c2, c3, c4, c5=1):
        super().__init__()
        self.c = c3 // 2
        self.cv1 = Conv(c1, c3, 1, 1)
        self.cv2 = nn.Sequential(RepNCSP(c3 // 2, c4, c5), Conv(c4, c4, 3, 1))
        self.cv3 = nn.Sequential(RepNCSP(c4, c4, c5), Conv(c4, c4, 3, 1))
        self.cv4 = Conv(c3 + 2 * c4, c2, 1, 1)


class ELAN1(ELAN):
    """The light ELAN block of the t/s models: split, two 3x3 convs, concatenate, 1x1 conv."""

    def __init__(self, c1, c2, c3, c4):
        super().__init__()
        self.c = c3 // 2
        self.cv1 = Conv(c1, c3, 1, 1)
        self.cv2 = Conv(c3 // 2, c4, 3, 1)
        self.cv3 = Conv(c4, c4, 3, 1)
        self.cv4 = Conv(c3 + 2 * c4, c2, 1, 1)


def _avg_down(x: torch.Tensor) -> torch.Tensor:
    """The 2x2, stride-1 average pool both downsampling blocks start with."""
    return F.avg_pool2d(x, 2, 1, 0, False, True)


class AConv(nn.Module):
    """Average pool (2, stride 1) then a stride-2 3x3 conv."""

    def __init__(self, c1, c2):
        super().__init__()
        self.cv1 = Conv(c1, c2, 3, 2, 1)

    def forward(self, x):
        return self.cv1(_avg_down(x))


class ADown(nn.Module):
    """Average pool, split channels: a stride-2 3x3 conv on one half, max pool + 1x1 conv on the other."""

    def __init__(self, c1, c2):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1 // 2, self.c, 3, 2, 1)
        self.cv2 = Conv(c1 // 2, self.c, 1, 1, 0)

    def forward(self, x):
        a, b = _avg_down(x).chunk(2, 1)
        return torch.cat((self.cv1(a), self.cv2(F.max_pool2d(b, 3, 2, 1))), 1)


class SP(nn.Module):
    """Same-size max pooling."""

    def __init__(self, k=3, s=1):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=s, padding=k // 2)

    def forward(self, x):
        return self.m(x)


class SPPELAN(nn.Module):
    """1x1 conv, three chained 5x5 max pools, concatenate all four, 1x1 conv."""

    def __init__(self, c1, c2, c3):
        super().__init__()
        self.c = c3
        self.cv1 = Conv(c1, c3, 1, 1)
        self.cv2 = SP(5)
        self.cv3 = SP(5)
        self.cv4 = SP(5)
        self.cv5 = Conv(4 * c3, c2, 1, 1)

    def forward(self, x):
        parts = [self.cv1(x)]
        for pool in (self.cv2, self.cv3, self.cv4):
            parts.append(pool(parts[-1]))
        return self.cv5(torch.cat(parts, 1))


class CBLinear(nn.Module):
    """A biased conv whose output is split into the given channel groups (reversible-branch routing)."""

    def __init__(self, c1, c2s, k=1, s=1, p=None, g=1):
        super().__init__()
        self.c2s = list(c2s)
        self.conv = nn.Conv2d(c1, sum(self.c2s), k, s, autopad(k, p), groups=g, bias=True)

    def forward(self, x):
        return self.conv(x).split(self.c2s, dim=1)


class CBFuse(nn.Module):
    """Upsample chosen CBLinear groups (nearest) to the last input's size and sum them with it."""

    def __init__(self, idx):
        super().__init__()
        self.idx = list(idx)

    def forward(self, xs):
        size = xs[-1].shape[2:]
        total = xs[-1]
        for i, x in enumerate(xs[:-1]):
            total = total + F.interpolate(x[self.idx[i]], size=size, mode="nearest")
        return total


class Silence(nn.Module):
    """Identity (the m/c models' layer 0, which lets two branches read the image)."""

    def forward(self, x):
        return x


class Concat(nn.Module):
    """Concatenate a list of tensors along a dimension."""

    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class DFL(nn.Module):
    """Distribution focal loss integral: softmax over `c1` bins, expectation with fixed weights 0..c1-1."""

    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(shapes, strides, offset: float = 0.5, dtype=torch.float32, device=None):
    """Anchor points ((grid + offset) per level, in feature units) and per-anchor strides, [A,2] and [A,1]."""
    points, stride_list = [], []
    for (h, w), s in zip(shapes, strides):
        ys = torch.arange(h, dtype=dtype, device=device) + offset
        xs = torch.arange(w, dtype=dtype, device=device) + offset
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(s), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(stride_list)


class DDetect(nn.Module):
    """The GELAN detection head: per level a box branch (cv2, 4x16 DFL bins) and a class branch (cv3).

    Eval output (reference form): [B, 4+nc, A] with cx, cy, w, h in input pixels and sigmoid scores.
    With ``export = True`` it emits the edgekit contract: ``boxes`` [B, A, 4] normalized x1, y1, x2, y2
    and ``scores`` [B, A, nc].
    """

    export = False

    def __init__(self, nc=80, ch=()):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.zeros(self.nl)
        c2 = _box_width(ch[0], self.reg_max)
        c3 = max(ch[0], min(self.nc * 2, 128))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3, g=4), nn.Conv2d(c2, 4 * self.reg_max, 1, groups=4))
            for x in ch
        )
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)

    def branch_maps(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1) for i in range(self.nl)]

    def forward(self, x):
        maps = self.branch_maps(x)
        if self.training:
            return maps
        return decode_maps(maps, self.dfl, self.stride, self.nc, self.reg_max, self.export)


class DualDDetect(nn.Module):
    """The PGI head: an auxiliary branch (cv2/cv3/dfl on the first nl inputs) and the main one
    (cv4/cv5/dfl2 on the last nl). Eval returns [aux, main]; export emits the main branch only."""

    export = False

    def __init__(self, nc=80, ch=()):
        super().__init__()
        self.nc = nc
        self.nl = len(ch) // 2
        self.reg_max = 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.zeros(self.nl)
        c2, c3 = _box_width(ch[0], self.reg_max), max(ch[0], min(self.nc * 2, 128))
        c4, c5 = _box_width(ch[self.nl], self.reg_max), max(ch[self.nl], min(self.nc * 2, 128))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3, g=4), nn.Conv2d(c2, 4 * self.reg_max, 1, groups=4))
            for x in ch[: self.nl]
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch[: self.nl]
        )
        self.cv4 = nn.ModuleList(
            nn.Sequential(Conv(x, c4, 3), Conv(c4, c4, 3, g=4), nn.Conv2d(c4, 4 * self.reg_max, 1, groups=4))
            for x in ch[self.nl :]
        )
        self.cv5 = nn.ModuleList(
            nn.Sequential(Conv(x, c5, 3), Conv(c5, c5, 3), nn.Conv2d(c5, nc, 1)) for x in ch[self.nl :]
        )
        self.dfl = DFL(self.reg_max)
        self.dfl2 = DFL(self.reg_max)

    def forward(self, x):
        aux = [torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1) for i in range(self.nl)]
        main = [torch.cat((self.cv4[i](x[self.nl + i]), self.cv5[i](x[self.nl + i])), 1) for i in range(self.nl)]
        if self.training:
            return [aux, main]
        if self.export:
            return decode_maps(main, self.dfl2, self.stride, self.nc, self.reg_max, True)
        return [
            decode_maps(aux, self.dfl, self.stride, self.nc, self.reg_max, False),
            decode_maps(main, self.dfl2, self.stride, self.nc, self.reg_max, False),
        ]


def _box_width(c: int, reg_max: int) -> int:
    value = max(c // 4, reg_max * 4, 16)
    return int(-(-value // 4) * 4)


def decode_maps(maps, dfl: nn.Module, strides, nc: int, reg_max: int, export: bool):
    """Per-level raw maps to boxes and scores: the reference's [B, 4+nc, A] (cx, cy, w, h pixels), or with
    `export` the contract's normalized xyxy ``boxes`` [B, A, 4] and ``scores`` [B, A, nc]."""
    b = maps[0].shape[0]
    shapes = [m.shape[2:] for m in maps]
    flat = torch.cat([m.view(b, 4 * reg_max + nc, -1) for m in maps], 2)
    box, cls = flat.split((reg_max * 4, nc), 1)
    points, stride = make_anchors(shapes, [float(s) for s in strides], 0.5, flat.dtype, flat.device)
    dist = dfl(box)  # [B, 4, A] in feature units (l, t, r, b)
    points, stride = points.transpose(0, 1).unsqueeze(0), stride.transpose(0, 1).unsqueeze(0)
    x1y1 = (points - dist[:, :2]) * stride
    x2y2 = (points + dist[:, 2:]) * stride
    scores = cls.sigmoid()
    if not export:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1, scores), 1)
    h_in, w_in = shapes[0][0] * float(strides[0]), shapes[0][1] * float(strides[0])
    boxes = torch.cat((x1y1[:, :1] / w_in, x1y1[:, 1:] / h_in, x2y2[:, :1] / w_in, x2y2[:, 1:] / h_in), 1)
    return boxes.transpose(1, 2), scores.transpose(1, 2)
