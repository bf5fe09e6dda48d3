"""Ultralytics architectures edgekit builds by name (ultralytics/cfg/models/: v5/yolov5.yaml, v8/yolov8.yaml,
11/yolo11.yaml, v10/yolov10*.yaml, 26/yolo26.yaml, v9/yolov9*.yaml).

YOLOv5u, YOLOv8, YOLO11 and YOLO26 are one yaml each with compound scales n/s/m/l/x; `scale` picks one, as the
file name does in Ultralytics. YOLOv10 has one yaml per scale (n/s/m/b/l/x), differing in which stages use
C2fCIB: written here as the n yaml plus each scale's replaced rows (YOLO26 likewise, as yolo11 plus its own).
Each layer is [from, repeats, block, args] exactly as in the reference yaml files.
"""

from __future__ import annotations

from typing import Any

YOLOV5U: dict[str, Any] = {
    "nc": 80,
    "scales": {
        "n": [0.33, 0.25, 1024],
        "s": [0.33, 0.50, 1024],
        "m": [0.67, 0.75, 1024],
        "l": [1.00, 1.00, 1024],
        "x": [1.33, 1.25, 1024],
    },
    "backbone": [
        [-1, 1, "Conv", [64, 6, 2, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 3, "C3", [128]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 6, "C3", [256]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 9, "C3", [512]],
        [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 3, "C3", [1024]],
        [-1, 1, "SPPF", [1024, 5]],
    ],
    "head": [
        [-1, 1, "Conv", [512, 1, 1]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 6], 1, "Concat", [1]],
        [-1, 3, "C3", [512, False]],
        [-1, 1, "Conv", [256, 1, 1]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],
        [-1, 3, "C3", [256, False]],
        [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 14], 1, "Concat", [1]],
        [-1, 3, "C3", [512, False]],
        [-1, 1, "Conv", [512, 3, 2]],
        [[-1, 10], 1, "Concat", [1]],
        [-1, 3, "C3", [1024, False]],
        [[17, 20, 23], 1, "Detect", ["nc"]],
    ],
}

YOLOV8: dict[str, Any] = {
    "nc": 80,
    "scales": {
        "n": [0.33, 0.25, 1024],
        "s": [0.33, 0.50, 1024],
        "m": [0.67, 0.75, 768],
        "l": [1.00, 1.00, 512],
        "x": [1.00, 1.25, 512],
    },
    "backbone": [
        [-1, 1, "Conv", [64, 3, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 3, "C2f", [128, True]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 6, "C2f", [256, True]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 6, "C2f", [512, True]],
        [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 3, "C2f", [1024, True]],
        [-1, 1, "SPPF", [1024, 5]],
    ],
    "head": [
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 6], 1, "Concat", [1]],
        [-1, 3, "C2f", [512]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],
        [-1, 3, "C2f", [256]],
        [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 12], 1, "Concat", [1]],
        [-1, 3, "C2f", [512]],
        [-1, 1, "Conv", [512, 3, 2]],
        [[-1, 9], 1, "Concat", [1]],
        [-1, 3, "C2f", [1024]],
        [[15, 18, 21], 1, "Detect", ["nc"]],
    ],
}

YOLO11: dict[str, Any] = {
    "nc": 80,
    "scales": {
        "n": [0.50, 0.25, 1024],
        "s": [0.50, 0.50, 1024],
        "m": [0.50, 1.00, 512],
        "l": [1.00, 1.00, 512],
        "x": [1.00, 1.50, 512],
    },
    "backbone": [
        [-1, 1, "Conv", [64, 3, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 2, "C3k2", [256, False, 0.25]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 2, "C3k2", [512, False, 0.25]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 2, "C3k2", [512, True]],
        [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 2, "C3k2", [1024, True]],
        [-1, 1, "SPPF", [1024, 5]],
        [-1, 2, "C2PSA", [1024]],
    ],
    "head": [
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 6], 1, "Concat", [1]],
        [-1, 2, "C3k2", [512, False]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],
        [-1, 2, "C3k2", [256, False]],
        [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 13], 1, "Concat", [1]],
        [-1, 2, "C3k2", [512, False]],
        [-1, 1, "Conv", [512, 3, 2]],
        [[-1, 10], 1, "Concat", [1]],
        [-1, 2, "C3k2", [1024, True]],
        [[16, 19, 22], 1, "Detect", ["nc"]],
    ],
}



def replacing(base: dict[str, Any], rows: dict[int, list], **keys: Any) -> dict[str, Any]:
    """`base` with the layers at the given indices (over backbone + head) replaced and top-level `keys` set."""
    layers = [rows.get(i, row) for i, row in enumerate(base["backbone"] + base["head"])]
    split = len(base["backbone"])
    return {**base, **keys, "backbone": layers[:split], "head": layers[split:]}


# yolo26.yaml: yolo11.yaml's scales and layers, end-to-end without DFL, a residual SPPF and C3k blocks in the head
YOLO26 = replacing(
    YOLO11,
    {
        9: [-1, 1, "SPPF", [1024, 5, 3, True]],
        13: [-1, 2, "C3k2", [512, True]],
        16: [-1, 2, "C3k2", [256, True]],
        19: [-1, 2, "C3k2", [512, True]],
        22: [-1, 1, "C3k2", [1024, True, 0.5, True]],
    },
    end2end=True,
    reg_max=1,
)

YOLOV10N: dict[str, Any] = {
    "nc": 80,
    "backbone": [
        [-1, 1, "Conv", [64, 3, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 3, "C2f", [128, True]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 6, "C2f", [256, True]],
        [-1, 1, "SCDown", [512, 3, 2]],
        [-1, 6, "C2f", [512, True]],
        [-1, 1, "SCDown", [1024, 3, 2]],
        [-1, 3, "C2f", [1024, True]],
        [-1, 1, "SPPF", [1024, 5]],
        [-1, 1, "PSA", [1024]],
    ],
    "head": [
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 6], 1, "Concat", [1]],
        [-1, 3, "C2f", [512]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],
        [-1, 3, "C2f", [256]],
        [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 13], 1, "Concat", [1]],
        [-1, 3, "C2f", [512]],
        [-1, 1, "SCDown", [512, 3, 2]],
        [[-1, 10], 1, "Concat", [1]],
        [-1, 3, "C2fCIB", [1024, True, True]],
        [[16, 19, 22], 1, "v10Detect", ["nc"]],
    ],
}

CIB_LK = [-1, 3, "C2fCIB", [1024, True, True]]
CIB = {c: [-1, 3, "C2fCIB", [c, True]] for c in (512, 1024)}
CIB6 = [-1, 6, "C2fCIB", [512, True]]
# per scale: [depth, width, max_channels] and the layers (by index over backbone + head) that differ from yolov10n
YOLOV10_SCALES: dict[str, tuple[list[float], dict[int, list]]] = {
    "n": ([0.33, 0.25, 1024], {}),
    "s": ([0.33, 0.50, 1024], {8: CIB_LK}),
    "m": ([0.67, 0.75, 768], {8: CIB[1024], 19: CIB[512], 22: CIB[1024]}),
    "b": ([0.67, 1.00, 512], {8: CIB[1024], 13: CIB[512], 19: CIB[512], 22: CIB[1024]}),
    "l": ([1.00, 1.00, 512], {8: CIB[1024], 13: CIB[512], 19: CIB[512], 22: CIB[1024]}),
    "x": ([1.00, 1.25, 512], {6: CIB6, 8: CIB[1024], 13: CIB[512], 19: CIB[512], 22: CIB[1024]}),
}


def yolov10(scale: str) -> dict[str, Any]:
    """The yaml dict of yolov10{scale}.yaml (one scale per file, as Ultralytics ships them)."""
    multiples, rows = YOLOV10_SCALES[scale]
    return replacing(YOLOV10N, rows, scales={scale: multiples})


GELAN: dict[str, dict[str, Any]] = {
    "yolov9t": {
        "nc": 80,
        "backbone": [
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "ELAN1", [32, 32, 16]],
            [-1, 1, "AConv", [64]],
            [-1, 1, "RepNCSPELAN4", [64, 64, 32, 3]],
            [-1, 1, "AConv", [96]],
            [-1, 1, "RepNCSPELAN4", [96, 96, 48, 3]],
            [-1, 1, "AConv", [128]],
            [-1, 1, "RepNCSPELAN4", [128, 128, 64, 3]],
            [-1, 1, "SPPELAN", [128, 64]],
        ],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 6], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [96, 96, 48, 3]],
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [64, 64, 32, 3]],
            [-1, 1, "AConv", [48]],
            [[-1, 12], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [96, 96, 48, 3]],
            [-1, 1, "AConv", [64]],
            [[-1, 9], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [128, 128, 64, 3]],
            [[15, 18, 21], 1, "Detect", ["nc"]],
        ],
    },
    "yolov9s": {
        "nc": 80,
        "backbone": [
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 1, "ELAN1", [64, 64, 32]],
            [-1, 1, "AConv", [128]],
            [-1, 1, "RepNCSPELAN4", [128, 128, 64, 3]],
            [-1, 1, "AConv", [192]],
            [-1, 1, "RepNCSPELAN4", [192, 192, 96, 3]],
            [-1, 1, "AConv", [256]],
            [-1, 1, "RepNCSPELAN4", [256, 256, 128, 3]],
            [-1, 1, "SPPELAN", [256, 128]],
        ],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 6], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [192, 192, 96, 3]],
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [128, 128, 64, 3]],
            [-1, 1, "AConv", [96]],
            [[-1, 12], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [192, 192, 96, 3]],
            [-1, 1, "AConv", [128]],
            [[-1, 9], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [256, 256, 128, 3]],
            [[15, 18, 21], 1, "Detect", ["nc"]],
        ],
    },
    "yolov9m": {
        "nc": 80,
        "backbone": [
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 1, "RepNCSPELAN4", [128, 128, 64, 1]],
            [-1, 1, "AConv", [240]],
            [-1, 1, "RepNCSPELAN4", [240, 240, 120, 1]],
            [-1, 1, "AConv", [360]],
            [-1, 1, "RepNCSPELAN4", [360, 360, 180, 1]],
            [-1, 1, "AConv", [480]],
            [-1, 1, "RepNCSPELAN4", [480, 480, 240, 1]],
            [-1, 1, "SPPELAN", [480, 240]],
        ],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 6], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [360, 360, 180, 1]],
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [240, 240, 120, 1]],
            [-1, 1, "AConv", [180]],
            [[-1, 12], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [360, 360, 180, 1]],
            [-1, 1, "AConv", [240]],
            [[-1, 9], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [480, 480, 240, 1]],
            [[15, 18, 21], 1, "Detect", ["nc"]],
        ],
    },
    "yolov9c": {
        "nc": 80,
        "backbone": [
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 1, "Conv", [128, 3, 2]],
            [-1, 1, "RepNCSPELAN4", [256, 128, 64, 1]],
            [-1, 1, "ADown", [256]],
            [-1, 1, "RepNCSPELAN4", [512, 256, 128, 1]],
            [-1, 1, "ADown", [512]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 1]],
            [-1, 1, "ADown", [512]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 1]],
            [-1, 1, "SPPELAN", [512, 256]],
        ],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 6], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 1]],
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [256, 256, 128, 1]],
            [-1, 1, "ADown", [256]],
            [[-1, 12], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 1]],
            [-1, 1, "ADown", [512]],
            [[-1, 9], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 1]],
            [[15, 18, 21], 1, "Detect", ["nc"]],
        ],
    },
    "yolov9e": {
        "nc": 80,
        "backbone": [
            [-1, 1, "nn.Identity", []],
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 1, "Conv", [128, 3, 2]],
            [-1, 1, "RepNCSPELAN4", [256, 128, 64, 2]],
            [-1, 1, "ADown", [256]],
            [-1, 1, "RepNCSPELAN4", [512, 256, 128, 2]],
            [-1, 1, "ADown", [512]],
            [-1, 1, "RepNCSPELAN4", [1024, 512, 256, 2]],
            [-1, 1, "ADown", [1024]],
            [-1, 1, "RepNCSPELAN4", [1024, 512, 256, 2]],
            [1, 1, "CBLinear", [[64]]],
            [3, 1, "CBLinear", [[64, 128]]],
            [5, 1, "CBLinear", [[64, 128, 256]]],
            [7, 1, "CBLinear", [[64, 128, 256, 512]]],
            [9, 1, "CBLinear", [[64, 128, 256, 512, 1024]]],
            [0, 1, "Conv", [64, 3, 2]],
            [[10, 11, 12, 13, 14, -1], 1, "CBFuse", [[0, 0, 0, 0, 0]]],
            [-1, 1, "Conv", [128, 3, 2]],
            [[11, 12, 13, 14, -1], 1, "CBFuse", [[1, 1, 1, 1]]],
            [-1, 1, "RepNCSPELAN4", [256, 128, 64, 2]],
            [-1, 1, "ADown", [256]],
            [[12, 13, 14, -1], 1, "CBFuse", [[2, 2, 2]]],
            [-1, 1, "RepNCSPELAN4", [512, 256, 128, 2]],
            [-1, 1, "ADown", [512]],
            [[13, 14, -1], 1, "CBFuse", [[3, 3]]],
            [-1, 1, "RepNCSPELAN4", [1024, 512, 256, 2]],
            [-1, 1, "ADown", [1024]],
            [[14, -1], 1, "CBFuse", [[4]]],
            [-1, 1, "RepNCSPELAN4", [1024, 512, 256, 2]],
            [-1, 1, "SPPELAN", [512, 256]],
        ],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 25], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 2]],
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 22], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [256, 256, 128, 2]],
            [-1, 1, "ADown", [256]],
            [[-1, 32], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [512, 512, 256, 2]],
            [-1, 1, "ADown", [512]],
            [[-1, 29], 1, "Concat", [1]],
            [-1, 1, "RepNCSPELAN4", [512, 1024, 512, 2]],
            [[35, 38, 41], 1, "Detect", ["nc"]],
        ],
    },
}

CONFIGS: dict[str, dict[str, Any]] = {
    **{f"yolov5{s}u": {**YOLOV5U, "scale": s, "yaml_file": f"yolov5{s}u.yaml"} for s in "nsmlx"},
    **{f"yolov8{s}": {**YOLOV8, "scale": s, "yaml_file": f"yolov8{s}.yaml"} for s in "nsmlx"},
    **{f"yolo11{s}": {**YOLO11, "scale": s, "yaml_file": f"yolo11{s}.yaml"} for s in "nsmlx"},
    **{f"yolov10{s}": {**yolov10(s), "scale": s, "yaml_file": f"yolov10{s}.yaml"} for s in YOLOV10_SCALES},
    **{f"yolo26{s}": {**YOLO26, "scale": s, "yaml_file": f"yolo26{s}.yaml"} for s in "nsmlx"},
    **{name: {**cfg, "yaml_file": f"{name}.yaml"} for name, cfg in GELAN.items()},
}
