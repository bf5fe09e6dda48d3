"""DAMO-YOLO building blocks with the reference's module and parameter names.

Names (``conv1``/``bn1``, ``rbr_dense``/``rbr_1x1``, ``convstem``, ``merge_3``, ``gfl_cls``...) match
tinyvision/DAMO-YOLO so its state_dicts load strictly; the implementations are edgekit's own. Every
BatchNorm uses eps 1e-3, as the reference detector sets at build time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.models.fuse import fold_bn, merge_branches

BN_EPS = 1e-3


def activation(name: str | nn.Module | None) -> nn.Module:
    """The reference's activation names (relu, silu, lrelu, identity), without in-place ops."""
    if isinstance(name, nn.Module):
        return name
    table = {"relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "identity": nn.Identity, None: nn.Identity}
    if name == "lrelu":
        return nn.LeakyReLU(0.1)
    if name not in table:
        raise ValueError(f"unsupported activation {name!r}")
    return table[name]()


def batchnorm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class ConvBNAct(nn.Module):
    """Conv2d ('same' padding) + BatchNorm + activation."""

    def __init__(self, c_in, c_out, k, stride=1, groups=1, bias=False, act="silu"):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=bias)
        self.bn = batchnorm(c_out)
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class ConvKXBN(nn.Module):
    """Conv2d + BatchNorm as the TinyNAS backbones name them (conv1, bn1)."""

    def __init__(self, c_in, c_out, k, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False)
        self.bn1 = batchnorm(c_out)

    def forward(self, x):
        return self.bn1(self.conv1(x))

    def reparameterize(self) -> None:
        if isinstance(self.bn1, nn.BatchNorm2d):
            self.conv1 = fold_bn(self.conv1, self.bn1)
            self.bn1 = nn.Identity()


class ConvKXBNRELU(nn.Module):
    """ConvKXBN followed by an activation."""

    def __init__(self, c_in, c_out, k, stride, act="silu"):
        super().__init__()
        self.conv = ConvKXBN(c_in, c_out, k, stride)
        self.activation_function = activation(act)

    def forward(self, x):
        return self.activation_function(self.conv(x))


def conv_bn(c_in, c_out, k, stride, padding) -> nn.Sequential:
    """A named (conv, bn) pair, the branch cell of RepConv."""
    cell = nn.Sequential()
    cell.add_module("conv", nn.Conv2d(c_in, c_out, k, stride, padding, bias=False))
    cell.add_module("bn", batchnorm(c_out))
    return cell


class RepConv(nn.Module):
    """3x3+BN and 1x1+BN branches summed (no identity branch); collapses into ``rbr_reparam``."""

    def __init__(self, c_in, c_out, k=3, stride=1, act="relu"):
        super().__init__()
        if k != 3:
            raise ValueError("RepConv needs a 3x3 kernel")
        self.nonlinearity = activation(act)
        self.rbr_dense = conv_bn(c_in, c_out, 3, stride, 1)
        self.rbr_1x1 = conv_bn(c_in, c_out, 1, stride, 0)

    def forward(self, x):
        if hasattr(self, "rbr_reparam"):
            return self.nonlinearity(self.rbr_reparam(x))
        return self.nonlinearity(self.rbr_dense(x) + self.rbr_1x1(x))

    def reparameterize(self) -> None:
        if hasattr(self, "rbr_reparam"):
            return
        self.rbr_reparam = merge_branches(
            [(self.rbr_dense.conv, self.rbr_dense.bn), (self.rbr_1x1.conv, self.rbr_1x1.bn)]
        )
        del self.rbr_dense, self.rbr_1x1


class Focus(nn.Module):
    """Space-to-depth (2x2 pixels to channels), then ConvBNAct."""

    def __init__(self, c_in, c_out, k=1, stride=1, act="silu"):
        super().__init__()
        self.conv = ConvBNAct(c_in * 4, c_out, k, stride, act=act)

    def forward(self, x):
        x = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)
        return self.conv(x)


class SPPBottleneck(nn.Module):
    """1x1 conv, parallel 5/9/13 max pools, concatenate, 1x1 conv (SiLU, as the reference defaults)."""

    def __init__(self, c_in, c_out, kernel_sizes=(5, 9, 13), act="silu"):
        super().__init__()
        hidden = c_in // 2
        self.conv1 = ConvBNAct(c_in, hidden, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes)
        self.conv2 = ConvBNAct(hidden * (len(kernel_sizes) + 1), c_out, 1, act=act)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [m(x) for m in self.m], 1))


class ResConvBlock(nn.Module):
    """TinyNAS residual block: conv1 (1x1 for k1kx, kxk for kxkx), act, conv2 (RepConv), residual, act."""

    def __init__(self, c_in, c_out, btn, k, stride, act="silu", block_type="k1kx"):
        super().__init__()
        self.stride = stride
        self.conv1 = ConvKXBN(c_in, btn, 1 if block_type == "k1kx" else k, 1)
        self.conv2 = RepConv(btn, c_out, k, stride, act="identity")
        self.activation_function = activation(act)
        self.residual_proj = ConvKXBN(c_in, c_out, 1, 1) if c_in != c_out and stride != 2 else None

    def forward(self, x):
        shortcut = self.residual_proj(x) if self.residual_proj is not None else x
        y = self.conv2(self.activation_function(self.conv1(x)))
        if self.stride != 2:
            y = y + shortcut
        return self.activation_function(y)


class SuperResStem(nn.Module):
    """A TinyNAS_res stage: L residual blocks, the first one strided; optionally SPP after it."""

    def __init__(self, c_in, c_out, btn, k, stride, num_blocks, with_spp=False, act="silu", block_type="k1kx"):
        super().__init__()
        self.block_list = nn.ModuleList()
        for i in range(num_blocks):
            first = i == 0
            self.block_list.append(
                ResConvBlock(c_in if first else c_out, c_out, btn, k, stride if first else 1, act, block_type)
            )
            if first and with_spp:
                self.block_list.append(SPPBottleneck(c_out, c_out))

    def forward(self, x):
        for block in self.block_list:
            x = block(x)
        return x


class CSPWrapper(nn.Module):
    """A TinyNAS_csp stage: strided downsampler (+SPP), then CSP: half through the residual blocks,
    half straight, concatenated and fused. Its own convs use ReLU whatever the backbone's activation,
    as the reference builds them."""

    def __init__(self, c_in, c_out, blocks: list[nn.Module], with_spp=False):
        super().__init__()
        self.with_spp = with_spp
        hidden = c_out // 2
        self.convstem = nn.ModuleList(blocks)
        self.downsampler = ConvKXBNRELU(c_in, hidden * 2, 3, 2, act="relu")
        if with_spp:
            self.spp = SPPBottleneck(hidden * 2, hidden * 2)
        if len(self.convstem) > 0:
            self.conv_start = ConvKXBNRELU(hidden * 2, hidden, 1, 1, act="relu")
            self.conv_shortcut = ConvKXBNRELU(hidden * 2, c_out // 2, 1, 1, act="relu")
            self.conv_fuse = ConvKXBNRELU(c_out, c_out, 1, 1, act="relu")

    def forward(self, x):
        x = self.downsampler(x)
        if self.with_spp:
            x = self.spp(x)
        if len(self.convstem) == 0:
            return x
        shortcut = self.conv_shortcut(x)
        x = self.conv_start(x)
        for block in self.convstem:
            x = block(x)
        return self.conv_fuse(torch.cat((x, shortcut), 1))


def csp_blocks(stage: dict, act: str) -> list[nn.Module]:
    """The residual blocks of one CSP stage (the reference's CSPStem, without its own container)."""
    c_out = stage["out"] // 2
    count = stage["L"] - 1 if stage["s"] == 2 else stage["L"]
    block_type = "k1kx" if stage["class"] == "SuperResConvK1KX" else "kxkx"
    blocks = []
    for i in range(count):
        c_in = stage["in"] // 2 if stage["s"] == 1 and i == 0 else c_out
        blocks.append(ResConvBlock(c_in, c_out, stage["btn"], stage["k"], 1, act, block_type))
    return blocks


class TinyNAS(nn.Module):
    """TinyNAS backbone (``res`` for T/S, ``csp`` for M/L) built from its structure list."""

    def __init__(self, kind, structure, out_indices, with_spp=True, use_focus=True, act="relu"):
        super().__init__()
        self.kind = kind
        self.out_indices = list(out_indices)
        stem_info, stages = structure[0], structure[1:]
        if use_focus:
            stem = Focus(stem_info["in"], stem_info["out"], stem_info["k"], act=act)
        else:
            stem = ConvKXBNRELU(stem_info["in"], stem_info["out"], stem_info["k"], stem_info["s"], act=act)
        if kind == "res":
            layers = [stem]
            for i, s in enumerate(stages):
                block_type = "k1kx" if s["class"] == "SuperResConvK1KX" else "kxkx"
                spp = with_spp and i == len(stages) - 1
                layers.append(SuperResStem(s["in"], s["out"], s["btn"], s["k"], s["s"], s["L"], spp, act, block_type))
            self.block_list = nn.ModuleList(layers)
        elif kind == "csp":
            if len(stages) != 5:
                raise ValueError(f"a TinyNAS_csp structure has 5 stages after the stem, got {len(stages)}")
            wrappers = [stem]
            groups = [[stages[0]], [stages[1]], [stages[2], stages[3]], [stages[4]]]
            for i, group in enumerate(groups):
                blocks = [b for s in group for b in csp_blocks(s, act)]
                wrappers.append(CSPWrapper(group[0]["in"], group[-1]["out"], blocks, with_spp and i == len(groups) - 1))
            self.csp_stage = nn.ModuleList(wrappers)
        else:
            raise ValueError(f"unknown TinyNAS kind {kind!r}")

    def forward(self, x):
        features = []
        for i, layer in enumerate(self.block_list if self.kind == "res" else self.csp_stage):
            x = layer(x)
            if i in self.out_indices:
                features.append(x)
        return features


class BasicBlock3x3Reverse(nn.Module):
    """RepConv (3x3, to the hidden width) then ConvBNAct (3x3, back), with a residual."""

    def __init__(self, c_in, hidden_ratio, c_out, act="relu", shortcut=True):
        super().__init__()
        hidden = int(c_in * hidden_ratio)
        self.conv1 = ConvBNAct(hidden, c_out, 3, act=act)
        self.conv2 = RepConv(c_in, hidden, 3, act=act)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv1(self.conv2(x))
        return x + y if self.shortcut else y


class CSPStage(nn.Module):
    """RepGFPN fusion node: two 1x1 splits, n reversed 3x3 blocks on one, concatenate every stage, 1x1."""

    def __init__(self, c_in, hidden_ratio, c_out, n, act="relu"):
        super().__init__()
        first = c_out // 2
        mid = c_out - first
        self.conv1 = ConvBNAct(c_in, first, 1, act=act)
        self.conv2 = ConvBNAct(c_in, mid, 1, act=act)
        self.convs = nn.Sequential()
        for i in range(n):
            self.convs.add_module(str(i), BasicBlock3x3Reverse(mid, hidden_ratio, mid, act=act))
        self.conv3 = ConvBNAct(mid * n + first, c_out, 1, act=act)

    def forward(self, x):
        parts = [self.conv1(x)]
        y = self.conv2(x)
        for block in self.convs:
            y = block(y)
            parts.append(y)
        return self.conv3(torch.cat(parts, 1))


class GiraffeNeckV2(nn.Module):
    """RepGFPN: bottom-up and top-down fusion of three backbone levels into three head levels."""

    def __init__(
        self, depth=1.0, hidden_ratio=1.0, in_channels=(256, 512, 1024), out_channels=(256, 512, 1024), act="silu"
    ):
        super().__init__()
        c0, c1, c2 = in_channels
        o0, o1, o2 = out_channels
        n = round(3 * depth)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.bu_conv13 = ConvBNAct(c1, c1, 3, 2, act=act)
        self.merge_3 = CSPStage(c1 + c2, hidden_ratio, c2, n, act)
        self.bu_conv24 = ConvBNAct(c0, c0, 3, 2, act=act)
        self.merge_4 = CSPStage(c0 + c1 + c2, hidden_ratio, c1, n, act)
        self.merge_5 = CSPStage(c1 + c0, hidden_ratio, o0, n, act)
        self.bu_conv57 = ConvBNAct(o0, o0, 3, 2, act=act)
        self.merge_7 = CSPStage(o0 + c1, hidden_ratio, o1, n, act)
        self.bu_conv46 = ConvBNAct(c1, c1, 3, 2, act=act)
        self.bu_conv76 = ConvBNAct(o1, o1, 3, 2, act=act)
        self.merge_6 = CSPStage(c1 + o1 + c2, hidden_ratio, o2, n, act)

    def forward(self, features):
        x2, x1, x0 = features
        x3 = self.merge_3(torch.cat([x0, self.bu_conv13(x1)], 1))
        x4 = self.merge_4(torch.cat([x1, self.bu_conv24(x2), self.upsample(x3)], 1))
        x5 = self.merge_5(torch.cat([x2, self.upsample(x4)], 1))
        x7 = self.merge_7(torch.cat([x4, self.bu_conv57(x5)], 1))
        x6 = self.merge_6(torch.cat([x3, self.bu_conv46(x4), self.bu_conv76(x7)], 1))
        return x5, x7, x6


class Scale(nn.Module):
    """A learnable scalar multiplier."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float))

    def forward(self, x):
        return x * self.scale


class Integral(nn.Module):
    """Expectation of a distribution over reg_max+1 bins with values linspace(0, reg_max)."""

    def __init__(self, reg_max=16):
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", torch.linspace(0, reg_max, reg_max + 1))

    def forward(self, x):
        return (x * self.project.type_as(x)).sum(-1)  # the expectation; a matmul with a 1-d vector trips CoreML


class ZeroHead(nn.Module):
    """Per level a 3x3 class conv and a 3x3 box-distribution conv (4 x (reg_max+1)), with a Scale.

    Eval output (reference form): ``scores`` [B, A, nc] (sigmoid) and ``boxes`` [B, A, 4] (x1, y1, x2, y2
    in input pixels), anchor points at grid * stride (no half-cell offset). With ``export = True`` boxes
    are normalized to the input size and the order is the contract's (``boxes``, ``scores``).
    """

    export = False

    def __init__(self, num_classes=80, in_channels=(128, 256, 512), reg_max=16, strides=(8, 16, 32)):
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.strides = list(strides)
        self.cls_convs = nn.ModuleList(nn.ModuleList() for _ in strides)  # no stacked convs in T/S/M/L
        self.reg_convs = nn.ModuleList(nn.ModuleList() for _ in strides)
        self.gfl_cls = nn.ModuleList(nn.Conv2d(c, num_classes, 3, padding=1) for c in in_channels)
        self.gfl_reg = nn.ModuleList(nn.Conv2d(c, 4 * (reg_max + 1), 3, padding=1) for c in in_channels)
        self.scales = nn.ModuleList(Scale(1.0) for _ in strides)
        self.integral = Integral(reg_max)

    def reparameterize(self) -> None:
        """Fold each level's Scale into its box conv."""
        with torch.no_grad():
            for conv, scale in zip(self.gfl_reg, self.scales):
                conv.weight.mul_(scale.scale)
                conv.bias.mul_(scale.scale)
                scale.scale.fill_(1.0)

    def forward(self, features):
        scores, boxes = [], []
        b = features[0].shape[0]
        for x, cls_conv, reg_conv, scale, stride in zip(
            features, self.gfl_cls, self.gfl_reg, self.scales, self.strides
        ):
            h, w = x.shape[2:]
            scores.append(cls_conv(x).sigmoid().flatten(2).transpose(1, 2))  # [B, HW, nc]
            dist = scale(reg_conv(x)).float().reshape(b, 4, self.reg_max + 1, -1)
            dist = self.integral(F.softmax(dist, dim=2).permute(0, 3, 1, 2)) * stride  # [B, HW, 4]
            ys = torch.arange(h, dtype=dist.dtype, device=dist.device) * stride
            xs = torch.arange(w, dtype=dist.dtype, device=dist.device) * stride
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            points = torch.stack((gx.flatten(), gy.flatten()), -1)  # [HW, 2]
            boxes.append(torch.cat((points - dist[..., :2], points + dist[..., 2:]), -1))
        scores, boxes = torch.cat(scores, 1), torch.cat(boxes, 1)
        if not self.export:
            return scores, boxes
        h_in, w_in = features[0].shape[2] * float(self.strides[0]), features[0].shape[3] * float(self.strides[0])
        norm = torch.cat(
            (boxes[..., 0:1] / w_in, boxes[..., 1:2] / h_in, boxes[..., 2:3] / w_in, boxes[..., 3:4] / h_in), -1
        )
        return norm, scores


class DAMOYOLO(nn.Module):
    """Backbone, neck and head, as the reference Detector composes them."""

    def __init__(self, cfg: dict, num_classes: int | None = None):
        super().__init__()
        bb, neck, head = cfg["backbone"], cfg["neck"], dict(cfg["head"])
        if num_classes is not None:
            head["num_classes"] = num_classes
        self.backbone = TinyNAS(
            bb["kind"], bb["structure"], bb["out_indices"], bb["with_spp"], bb["use_focus"], bb["act"]
        )
        self.neck = GiraffeNeckV2(
            neck["depth"], neck["hidden_ratio"], neck["in_channels"], neck["out_channels"], neck["act"]
        )
        self.head = ZeroHead(head["num_classes"], head["in_channels"], head["reg_max"], head["strides"])

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))
