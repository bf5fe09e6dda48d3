"""The official DAMO-YOLO T/S/M/L architectures (tinyvision/DAMO-YOLO configs and nas_backbones/*.txt) as data.

A backbone is a TinyNAS structure: a stem, then stages of residual blocks ('L' blocks with bottleneck
'btn', kernel 'k', stride 's'); k1kx blocks open with a 1x1 conv, kxkx blocks with a kxk one. The neck is
GiraffeNeckV2 (RepGFPN) and the head ZeroHead with reg_max 16, no stacked convs.
"""

from __future__ import annotations

from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "damoyolo-t": {
        "backbone": {
            "kind": "res",
            "structure": [
                {"class": "ConvKXBNRELU", "in": 3, "k": 3, "out": 24, "s": 1},
                {"L": 2, "btn": 24, "class": "SuperResConvK1KX", "in": 24, "k": 3, "out": 64, "s": 2},
                {"L": 2, "btn": 64, "class": "SuperResConvK1KX", "in": 64, "k": 3, "out": 96, "s": 2},
                {"L": 2, "btn": 96, "class": "SuperResConvK1KX", "in": 96, "k": 3, "out": 192, "s": 2},
                {"L": 2, "btn": 152, "class": "SuperResConvK1KX", "in": 192, "k": 3, "out": 192, "s": 1},
                {"L": 1, "btn": 192, "class": "SuperResConvK1KX", "in": 192, "k": 3, "out": 384, "s": 2},
            ],
            "out_indices": [2, 4, 5],
            "with_spp": True,
            "use_focus": True,
            "act": "relu",
        },
        "neck": {
            "depth": 1.0,
            "hidden_ratio": 1.0,
            "in_channels": [96, 192, 384],
            "out_channels": [64, 128, 256],
            "act": "relu",
        },
        "head": {"num_classes": 80, "in_channels": [64, 128, 256], "reg_max": 16, "strides": [8, 16, 32]},
    },
    "damoyolo-s": {
        "backbone": {
            "kind": "res",
            "structure": [
                {"class": "ConvKXBNRELU", "in": 3, "k": 3, "out": 32, "s": 1},
                {"L": 1, "btn": 24, "class": "SuperResConvK1KX", "in": 32, "k": 3, "out": 128, "s": 2},
                {"L": 5, "btn": 88, "class": "SuperResConvK1KX", "in": 128, "k": 3, "out": 128, "s": 2},
                {"L": 3, "btn": 128, "class": "SuperResConvK1KX", "in": 128, "k": 3, "out": 256, "s": 2},
                {"L": 2, "btn": 120, "class": "SuperResConvK1KX", "in": 256, "k": 3, "out": 256, "s": 1},
                {"L": 1, "btn": 144, "class": "SuperResConvK1KX", "in": 256, "k": 3, "out": 512, "s": 2},
            ],
            "out_indices": [2, 4, 5],
            "with_spp": True,
            "use_focus": True,
            "act": "relu",
        },
        "neck": {
            "depth": 1.0,
            "hidden_ratio": 0.75,
            "in_channels": [128, 256, 512],
            "out_channels": [128, 256, 512],
            "act": "relu",
        },
        "head": {"num_classes": 80, "in_channels": [128, 256, 512], "reg_max": 16, "strides": [8, 16, 32]},
    },
    "damoyolo-m": {
        "backbone": {
            "kind": "csp",
            "structure": [
                {"class": "ConvKXBNRELU", "in": 3, "k": 3, "out": 32, "s": 1},
                {"L": 2, "btn": 64, "class": "SuperResConvKXKX", "in": 32, "k": 3, "out": 128, "s": 2},
                {"L": 4, "btn": 64, "class": "SuperResConvKXKX", "in": 128, "k": 3, "out": 128, "s": 2},
                {"L": 4, "btn": 256, "class": "SuperResConvKXKX", "in": 128, "k": 3, "out": 256, "s": 2},
                {"L": 4, "btn": 256, "class": "SuperResConvKXKX", "in": 256, "k": 3, "out": 256, "s": 1},
                {"L": 3, "btn": 256, "class": "SuperResConvKXKX", "in": 256, "k": 3, "out": 512, "s": 2},
            ],
            "out_indices": [2, 3, 4],
            "with_spp": True,
            "use_focus": True,
            "act": "silu",
        },
        "neck": {
            "depth": 1.5,
            "hidden_ratio": 1.0,
            "in_channels": [128, 256, 512],
            "out_channels": [128, 256, 512],
            "act": "silu",
        },
        "head": {"num_classes": 80, "in_channels": [128, 256, 512], "reg_max": 16, "strides": [8, 16, 32]},
    },
    "damoyolo-l": {
        "backbone": {
            "kind": "csp",
            "structure": [
                {"class": "ConvKXBNRELU", "in": 3, "k": 3, "out": 32, "s": 1},
                {"L": 3, "btn": 96, "class": "SuperResConvKXKX", "in": 32, "k": 3, "out": 128, "s": 2},
                {"L": 5, "btn": 96, "class": "SuperResConvKXKX", "in": 128, "k": 3, "out": 128, "s": 2},
                {"L": 5, "btn": 384, "class": "SuperResConvKXKX", "in": 128, "k": 3, "out": 256, "s": 2},
                {"L": 5, "btn": 384, "class": "SuperResConvKXKX", "in": 256, "k": 3, "out": 256, "s": 1},
                {"L": 4, "btn": 384, "class": "SuperResConvKXKX", "in": 256, "k": 3, "out": 512, "s": 2},
            ],
            "out_indices": [2, 3, 4],
            "with_spp": True,
            "use_focus": True,
            "act": "silu",
        },
        "neck": {
            "depth": 2.0,
            "hidden_ratio": 1.0,
            "in_channels": [128, 256, 512],
            "out_channels": [128, 256, 512],
            "act": "silu",
        },
        "head": {"num_classes": 80, "in_channels": [128, 256, 512], "reg_max": 16, "strides": [8, 16, 32]},
    },
}
