"""Blocks of Ultralytics' YOLO models (YOLOv5u, YOLOv8, YOLO11, YOLOv10, YOLO26, the GELAN-only yolov9t..e) with
the reference's names.

Module and parameter names (``cv1``, ``m``, ``one2one_cv3``...) match ultralytics/ultralytics so its
checkpoints load strictly; the implementations are edgekit's own. GELAN blocks are shared with the
official YOLOv9 definitions, whose parameter names are identical.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgekit.models import yolov9_blocks as G
from edgekit.models.fuse import merge_branches
from edgekit.models.yolov9_blocks import DFL, Conv, make_anchors


class DWConv(Conv):
    """Depth-wise convolution (groups = gcd of the channel counts)."""

    def __init__(self, c1, c2, k=1, s=1, d=1, act=True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


class Bottleneck(G.ResidualPair):
    """Two convolutions with an optional residual."""

    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, k[0], 1)
        self.cv2 = Conv(hidden, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2


class C2f(nn.Module):
    """Split into two, run n bottlenecks on the second part, concatenate every stage, 1x1 conv."""

    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=(3, 3), e=1.0) for _ in range(n))

    def forward(self, x):
        parts = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class C3(G.CSP):
    """CSP bottleneck with three convolutions."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, k=(1, 3)):
        super().__init__(c1, c2, n, e, lambda c: Bottleneck(c, c, shortcut, g, k=k, e=1.0))


class C3k(C3):
    """C3 whose bottlenecks use k x k kernels."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, k=3):
        super().__init__(c1, c2, n, shortcut, g, e, k=(k, k))


class Attention(nn.Module):
    """Multi-head self-attention over the spatial positions, with a depth-wise positional conv."""

    def __init__(self, dim, num_heads=8, attn_ratio=0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x):
        b, c, h, w = x.shape
        n = h * w
        q, k, v = (
            self.qkv(x)
            .view(b, self.num_heads, 2 * self.key_dim + self.head_dim, n)
            .split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        )
        weights = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
        out = (v @ weights.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """Attention then a two-conv feed-forward, each with a residual."""

    def __init__(self, c, attn_ratio=0.5, num_heads=4, shortcut=True):
        super().__init__()
        self.attn = Attention(c, attn_ratio=attn_ratio, num_heads=num_heads)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x):
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """Split in two, run PSABlocks on one half, concatenate, 1x1 conv."""

    def __init__(self, c1, c2, n=1, e=0.5):
        super().__init__()
        if c1 != c2:
            raise ValueError("C2PSA needs c1 == c2")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)) for _ in range(n)))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class C3k2(C2f):
    """C2f whose inner blocks are Bottlenecks, C3k blocks, or Bottleneck + PSABlock pairs."""

    def __init__(self, c1, c2, n=1, c3k=False, e=0.5, attn=False, g=1, shortcut=True):
        super().__init__(c1, c2, n, shortcut, g, e)

        def inner():
            if attn:
                return nn.Sequential(
                    Bottleneck(self.c, self.c, shortcut, g),
                    PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)),
                )
            if c3k:
                return C3k(self.c, self.c, 2, shortcut, g)
            return Bottleneck(self.c, self.c, shortcut, g)

        self.m = nn.ModuleList(inner() for _ in range(n))


class PSA(nn.Module):
    """YOLOv10's position-sensitive attention: split in two, attention then feed-forward (each with a residual)
    on one half, concatenate, 1x1 conv (Wang et al., "YOLOv10", arXiv:2405.14458)."""

    def __init__(self, c1, c2, e=0.5):
        super().__init__()
        if c1 != c2:
            raise ValueError("PSA needs c1 == c2")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.attn = Attention(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1))
        self.ffn = nn.Sequential(Conv(self.c, self.c * 2, 1), Conv(self.c * 2, self.c, 1, act=False))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        b = b + self.attn(b)
        b = b + self.ffn(b)
        return self.cv2(torch.cat((a, b), 1))


class SCDown(nn.Module):
    """YOLOv10's spatial-channel decoupled downsampling: 1x1 conv to the output width, then a depth-wise
    strided k x k conv."""

    def __init__(self, c1, c2, k, s):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, 1)
        self.cv2 = Conv(c2, c2, k, s, g=c2, act=False)

    def forward(self, x):
        return self.cv2(self.cv1(x))


class RepVGGDW(nn.Module):
    """A depth-wise 7x7 and 3x3 Conv+BN in parallel, summed, SiLU; re-parameterizes into one biased 7x7
    depth-wise conv (RepVGG, Ding et al. 2021; as used by YOLOv10's large-kernel CIB)."""

    def __init__(self, ed):
        super().__init__()
        self.conv = Conv(ed, ed, 7, 1, 3, g=ed, act=False)
        self.conv1 = Conv(ed, ed, 3, 1, 1, g=ed, act=False)
        self.act = nn.SiLU()

    def forward(self, x):
        if not hasattr(self, "conv1"):
            return self.act(self.conv(x))
        return self.act(self.conv(x) + self.conv1(x))

    def reparameterize(self) -> None:
        """Replace both branches by the single equivalent 7x7 depth-wise convolution."""
        if not hasattr(self, "conv1"):
            return
        self.conv = merge_branches([(self.conv.conv, self.conv.bn), (self.conv1.conv, self.conv1.bn)])
        del self.conv1


class CIB(nn.Module):
    """YOLOv10's compact inverted block: depth-wise 3x3, 1x1 up, depth-wise 3x3 (or RepVGGDW when `lk`), 1x1
    down, depth-wise 3x3; a residual when shapes allow."""

    def __init__(self, c1, c2, shortcut=True, e=0.5, lk=False):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = nn.Sequential(
            Conv(c1, c1, 3, g=c1),
            Conv(c1, 2 * hidden, 1),
            RepVGGDW(2 * hidden) if lk else Conv(2 * hidden, 2 * hidden, 3, g=2 * hidden),
            Conv(2 * hidden, c2, 1),
            Conv(c2, c2, 3, g=c2),
        )
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv1(x) if self.add else self.cv1(x)


class C2fCIB(C2f):
    """C2f whose inner blocks are CIBs (YOLOv10)."""

    def __init__(self, c1, c2, n=1, shortcut=False, lk=False, g=1, e=0.5):
        super().__init__(c1, c2, n, shortcut, g, e)
        self.m = nn.ModuleList(CIB(self.c, self.c, shortcut, e=1.0, lk=lk) for _ in range(n))


class SPPF(nn.Module):
    """1x1 conv, n chained k x k max pools, concatenate, 1x1 conv; optional residual (YOLO26)."""

    def __init__(self, c1, c2, k=5, n=3, shortcut=False):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1, act=False)
        self.cv2 = Conv(hidden * (n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.n = n
        self.add = shortcut and c1 == c2

    def forward(self, x):
        parts = [self.cv1(x)]
        for _ in range(self.n):
            parts.append(self.m(parts[-1]))
        y = self.cv2(torch.cat(parts, 1))
        return y + x if self.add else y


class SPPELAN(G.SPPELAN):
    """Ultralytics' SPPELAN: the same computation, with bare MaxPool2d layers as cv2..cv4."""

    def __init__(self, c1, c2, c3, k=5):
        super().__init__(c1, c2, c3)
        self.cv2, self.cv3, self.cv4 = (nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for _ in range(3))


class Detect(nn.Module):
    """Ultralytics' detection head, with the one-to-one (end-to-end) branch when built with ``end2end``.

    ``mode`` picks what eval returns:
    - ``reference``: what Ultralytics returns in eval — [B, max_det, 6] (x1, y1, x2, y2 pixels, score,
      class) for end-to-end heads, else [B, 4+nc, A] (cx, cy, w, h pixels, scores);
    - ``o2o`` / ``o2m``: the contract's normalized xyxy ``boxes`` [B, A, 4] and ``scores`` [B, A, nc] from
      the one-to-one or one-to-many branch;
    - ``e2e``: the contract's ``detections`` [B, K, 6] (normalized boxes), top-k exactly as the reference.
    """

    legacy = False
    max_det = 300

    def __init__(self, nc=80, reg_max=16, end2end=False, ch=(), legacy=None):
        super().__init__()
        legacy = self.legacy if legacy is None else legacy
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = reg_max
        self.no = nc + reg_max * 4
        self.stride = torch.zeros(self.nl)
        self.mode = "reference"
        c2, c3 = max(16, ch[0] // 4, reg_max * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch
        )
        if legacy:
            self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(
                    nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                    nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                    nn.Conv2d(c3, nc, 1),
                )
                for x in ch
            )
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()
        if end2end:
            import copy

            self.one2one_cv2 = copy.deepcopy(self.cv2)
            self.one2one_cv3 = copy.deepcopy(self.cv3)

    @property
    def end2end(self) -> bool:
        return getattr(self, "one2one_cv2", None) is not None

    def _branch(self, x, box_head, cls_head):
        b = x[0].shape[0]
        boxes = torch.cat([box_head[i](x[i]).view(b, 4 * self.reg_max, -1) for i in range(self.nl)], -1)
        scores = torch.cat([cls_head[i](x[i]).view(b, self.nc, -1) for i in range(self.nl)], -1)
        return boxes, scores

    def _decode(self, x, box_head, cls_head):
        """Corner boxes in input pixels [B, 4, A] and probabilities [B, nc, A] of one branch."""
        raw_boxes, logits = self._branch(x, box_head, cls_head)
        points, strides = make_anchors(
            [t.shape[2:] for t in x], [float(s) for s in self.stride], 0.5, raw_boxes.dtype, raw_boxes.device
        )
        points, strides = points.transpose(0, 1).unsqueeze(0), strides.transpose(0, 1).unsqueeze(0)
        dist = self.dfl(raw_boxes)
        x1y1 = (points - dist[:, :2]) * strides
        x2y2 = (points + dist[:, 2:]) * strides
        return torch.cat((x1y1, x2y2), 1), logits.sigmoid()

    def _input_size(self, x) -> tuple:
        return x[0].shape[2] * float(self.stride[0]), x[0].shape[3] * float(self.stride[0])

    def forward(self, x):
        if self.training:
            out = {"one2many": self._branch(x, self.cv2, self.cv3)}
            if self.end2end:
                out["one2one"] = self._branch(x, self.one2one_cv2, self.one2one_cv3)
            return out
        use_o2o = self.end2end and self.mode != "o2m"
        heads = (self.one2one_cv2, self.one2one_cv3) if use_o2o else (self.cv2, self.cv3)
        boxes, scores = self._decode(x, *heads)
        h_in, w_in = self._input_size(x)
        if self.mode == "reference":
            if self.end2end:
                return topk_detections(boxes.transpose(1, 2), scores.transpose(1, 2), self.max_det)
            centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
            return torch.cat((centre, size, scores), 1)
        norm = torch.cat((boxes[:, 0:1] / w_in, boxes[:, 1:2] / h_in, boxes[:, 2:3] / w_in, boxes[:, 3:4] / h_in), 1)
        if self.mode == "e2e":
            return topk_detections(norm.transpose(1, 2), scores.transpose(1, 2), self.max_det)
        return norm.transpose(1, 2), scores.transpose(1, 2)


class v10Detect(Detect):
    """YOLOv10's head (Wang et al., arXiv:2405.14458): a DFL Detect head with the one-to-one branch and the light
    (depth-wise) class branch whatever the yaml's other blocks; same tensors as the reference's."""

    def __init__(self, nc=80, ch=()):
        super().__init__(nc, reg_max=16, end2end=True, ch=ch, legacy=False)


def topk_detections(boxes: torch.Tensor, scores: torch.Tensor, max_det: int) -> torch.Tensor:
    """End-to-end selection: top-k anchors by best score, then top-k (anchor, class) pairs among them.

    `boxes` [B, A, 4], `scores` [B, A, nc] -> [B, k, 6] = box, score, class (as float); no threshold.
    The flat (slot, class) index is split by gathering from two integer tables rather than by ``//`` and
    ``%``: exporters keep gathers integer, while some (coremltools) turn integer division into float,
    which index arithmetic cannot survive. Same selection as the reference's
    ``Detect.postprocess`` (ultralytics/nn/modules/head.py).
    """
    batch, anchors, nc = scores.shape
    k = min(max_det, anchors)
    best = scores.max(dim=-1).values
    anchor_index = best.topk(k, dim=1).indices  # [B, k]
    picked = scores.gather(1, anchor_index.unsqueeze(-1).expand(-1, -1, nc))  # [B, k, nc]
    top_scores, flat_index = picked.flatten(1).topk(k, dim=1)  # [B, k], flat = slot * nc + class
    slot_of = torch.arange(k, device=scores.device).unsqueeze(1).expand(k, nc).reshape(1, -1).expand(batch, -1)
    class_of = torch.arange(nc, device=scores.device).unsqueeze(0).expand(k, nc).reshape(1, -1).expand(batch, -1)
    labels = class_of.gather(1, flat_index).to(scores.dtype)
    rows = anchor_index.gather(1, slot_of.gather(1, flat_index))
    top_boxes = boxes.gather(1, rows.unsqueeze(-1).expand(-1, -1, 4))
    return torch.cat((top_boxes, top_scores.unsqueeze(-1), labels.unsqueeze(-1)), -1)
