"""Procedural scenes, labelled datasets and `edgekit val`: the COCO figures equal pycocotools' own on the same
predictions, and bad datasets fail with one line naming the file and line."""

import json
import logging

import cv2
import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.cli import main
from edgekit.eval import procedural, synthetic
from edgekit.eval.datasets import LabeledImage, load_dataset
from edgekit.eval.val import validate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return procedural.write_dataset(root, {"train": 4, "val": 10}, seed=7)


def test_scenes_are_deterministic_and_span_small_to_large_objects():
    a = procedural.render_scene(np.random.default_rng(3), 320, 320)
    b = procedural.render_scene(np.random.default_rng(3), 320, 320)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    rng = np.random.default_rng(0)
    sides, classes = [], set()
    for _ in range(40):
        scene = procedural.render_scene(rng, 320, 320)
        sides += np.maximum(scene.boxes[:, 2] - scene.boxes[:, 0], scene.boxes[:, 3] - scene.boxes[:, 1]).tolist()
        classes |= set(scene.labels.tolist())
    assert len(procedural.CLASSES) >= 6 and classes == set(range(len(procedural.CLASSES)))
    assert min(sides) < 12 and max(sides) > 0.4 * 320


def test_yolo_layout_and_coco_json_describe_the_same_objects(scenes):
    root = scenes.parent
    yolo = load_dataset(scenes, "val")
    coco = load_dataset(root / "annotations" / "instances_val.json", images=root / "images" / "val")
    assert yolo.names == coco.names == list(procedural.CLASSES)
    assert [i.image.name for i in yolo.items] == [i.image.name for i in coco.items]
    for a, b in zip(yolo.items, coco.items):
        assert np.array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=2e-6)
    assert yolo.instances > 10 and len(load_dataset(scenes, "train").items) == 4


def _coco_stats(dataset_yaml, detector):
    """COCO mAP50-95 and mAP50 (at most 100 detections per image, as its summary counts) computed by pycocotools
    directly, with its own summarize, from the label files."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, path in enumerate(sorted((dataset_yaml.parent / "images").glob("*.jpg")), 1):
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        images.append({"id": i, "width": w, "height": h})
        for line in (dataset_yaml.parent / "labels" / f"{path.stem}.txt").read_text().split("\n"):
            if line.strip():
                c, cx, cy, bw, bh = (float(v) for v in line.split())
                box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
                annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c), "bbox": box,
                                    "area": box[2] * box[3], "iscrowd": 0})
        found = detector(image, conf=0.001, iou=0.7, max_det=100)
        for (x1, y1, x2, y2), score, c in found:
            results.append({"image_id": i, "category_id": c, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c} for c in range(len(detector.names))]}
    gt.createIndex()
    evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats[0], evaluation.stats[1]


def test_val_equals_pycocotools_run_directly_on_the_same_predictions(tmp_path):
    data = synthetic.write_yolo_dataset(tmp_path / "shapes", 24, seed=11)
    detector = edgekit.load(assets.shapes_model())
    report = validate(detector, load_dataset(data, "val"), max_det=100, progress=False)  # COCO's summary: 100
    direct = edgekit.load(assets.shapes_model())
    direct.multi_label = True  # as val decodes (the field's val: every class above conf of an anchor)
    map50_95, map50 = _coco_stats(data, direct)
    assert report.map50_95 == pytest.approx(map50_95, abs=1e-4)
    assert report.map50 == pytest.approx(map50, abs=1e-4)
    assert report.map50_95 > 0.5 and 0 < report.precision <= 1 and 0 < report.recall <= 1
    assert report.ms["infer"] > 0 and report.instances == sum(c.instances for c in report.classes)


def test_ground_truth_is_detections_in_source_pixels_with_confidence_one(tmp_path):
    item = LabeledImage(tmp_path / "a.jpg", np.array([[0.1, 0.2, 0.5, 1.0]], np.float32), np.array([3]))
    truth = item.truth(100, 200)  # height, width
    np.testing.assert_allclose(truth.xyxy, [[20, 20, 100, 100]])
    assert truth.class_id.tolist() == [3] and truth.confidence.tolist() == [1.0] and truth.image_size == (100, 200)


def test_val_cli_prints_json_and_writes_plots(tmp_path, capsys):
    data = synthetic.write_yolo_dataset(tmp_path / "shapes", 8, seed=2)
    code = main(["val", str(assets.shapes_model()), "--data", str(data), "--json", "--quiet",
                 "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    report = json.loads(out)
    assert code == 0 and report["images"] == 8 and [c["name"] for c in report["classes"]] == list(synthetic.CLASSES)
    for name in ("pr_curve.png", "confusion_matrix.png"):
        image = cv2.imread(str(tmp_path / "plots" / name))
        assert image is not None and image.shape[0] > 400 and image.std() > 10  # a drawn chart, not a blank


@pytest.mark.convert
def test_a_checkpoint_validates_in_torch_like_its_artifact(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from edgekit.converters.source_detector import open_source_detector

    data = load_dataset(synthetic.write_yolo_dataset(tmp_path / "shapes", 6, seed=4), "val")
    torch_report = validate(open_source_detector(assets.demo_checkpoint(), [320]), data, progress=False)
    onnx_report = validate(edgekit.load(assets.shapes_model()), data, progress=False)
    assert torch_report.map50_95 == pytest.approx(onnx_report.map50_95, abs=0.01)


def test_backgrounds_are_said_once(tmp_path, caplog):
    data = procedural.write_dataset(tmp_path / "d", {"val": 3}, seed=1)
    for label in sorted((tmp_path / "d" / "labels" / "val").glob("*.txt"))[:2]:
        label.unlink()
    with caplog.at_level(logging.WARNING, logger="edgekit"):
        dataset = load_dataset(data, "val")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert dataset.backgrounds == 2 and warnings == ["2 of 3 images have no labels (used as backgrounds)"]


def _bad(root, label_text=None, yaml_text=None):
    data = procedural.write_dataset(root, {"val": 2}, seed=0)
    if label_text is not None:
        (root / "labels" / "val" / "val_00001.txt").write_text(label_text)
    if yaml_text is not None:
        data.write_text(yaml_text)
    return data


BAD = [
    ({"label_text": "0 0.5 0.5 0.1 0.1\n6 0.5 0.5 0.1 0.1\n"}, "val_00001.txt:2: class 6 out of range"),
    ({"label_text": "0 0.5 0.5 0.1\n"}, "val_00001.txt:1: expected 'class cx cy w h', found 4 fields"),
    ({"label_text": "\n\n0 0.5 zero 0.1 0.1\n"}, "val_00001.txt:3: not a label line"),
    ({"label_text": "1 120 80 30 30\n"}, "val_00001.txt:1: box not normalized to 0..1"),
    ({"yaml_text": "val: images/nowhere\nnames: [a, b, c, d, e, f]\n"}, "image folder not found"),
    ({"yaml_text": "train: images/val\nnames: [a, b, c, d, e, f]\n"}, "no 'val' split (it has: train)"),
    ({"yaml_text": "val: images/val\n"}, "no class 'names'"),
    ({"yaml_text": "val: [\n"}, "not a readable YAML file"),
]


@pytest.mark.parametrize(("how", "message"), BAD, ids=[m[:30] for _, m in BAD])
def test_bad_datasets_fail_in_one_line_naming_the_file(tmp_path, capsys, how, message):
    data = _bad(tmp_path / "d", **how)
    code = main(["val", str(assets.shapes_model()), "--data", str(data), "--plots", str(tmp_path / "plots")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("edgekit: error:") and message in err[0], err
    assert "unexpected" not in err[0] and not (tmp_path / "plots").exists()


def test_an_empty_split_and_a_class_count_mismatch_are_refused(tmp_path, capsys):
    (tmp_path / "d" / "images" / "val").mkdir(parents=True)
    (tmp_path / "d" / "data.yaml").write_text("val: images/val\nnames: [a, b, c]\n")
    assert main(["val", str(assets.shapes_model()), "--data", str(tmp_path / "d" / "data.yaml")]) == 1
    assert "the val split has no images" in capsys.readouterr().err
    data = procedural.write_dataset(tmp_path / "six", {"val": 1}, seed=0)
    assert main(["val", str(assets.shapes_model()), "--data", str(data)]) == 1
    assert "has 3 classes, the dataset" in capsys.readouterr().err


def test_a_yaml_without_path_is_read_relative_to_its_own_folder(scenes, tmp_path, monkeypatch):
    monkeypatch.chdir(scenes.parent.parent)
    relative = scenes.relative_to(scenes.parent.parent)
    assert not relative.is_absolute() and len(load_dataset(relative, "val").items) == 10
    from edgekit.converters.calibration import calibration_images

    assert len(calibration_images(relative, split="val")) == 10


def test_calibration_reads_a_coco_json_as_val_does(scenes):
    """A COCO json whose images lie in images/<split>/ (annotations/instances_val.json) is read by --calib as by
    `edgekit val`: both find the same images through one search rule."""
    from edgekit.converters.calibration import calibration_images

    coco = scenes.parent / "annotations" / "instances_val.json"
    found = calibration_images(coco, size=100)
    assert [p.name for p in found] == [item.image.name for item in load_dataset(coco).items]
    assert len(found) == 10 and all(p.parent == scenes.parent / "images" / "val" for p in found)
