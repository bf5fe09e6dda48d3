"""End to end on ONNX Runtime: known models, every input and output convention, boxes in source pixels."""

import numpy as np
import pytest

import edgekit
from edgekit import meta as meta_mod
from edgekit.errors import EdgekitError, MetadataError

import onnx_models as om

RECT = (100, 50, 300, 150)  # the red rectangle in om.scene(), source pixels


def expected_const_box(align, source=(200, 400), imgsz=(320, 320)):
    """Where the model's constant box (normalized to the input) lands in source pixels."""
    scale = min(imgsz[0] / source[0], imgsz[1] / source[1])
    pad_x = (imgsz[1] - round(source[1] * scale)) // 2 if align == "center" else 0
    pad_y = (imgsz[0] - round(source[0] * scale)) // 2 if align == "center" else 0
    x1, y1, x2, y2 = om.CONST_BOX * [imgsz[1], imgsz[0], imgsz[1], imgsz[0]]
    box = np.array([(x1 - pad_x) / scale, (y1 - pad_y) / scale, (x2 - pad_x) / scale, (y2 - pad_y) / scale])
    return np.clip(box, 0, [source[1], source[0], source[1], source[0]])


@pytest.mark.parametrize("kind", ["boxes_scores", "detections"])
@pytest.mark.parametrize("align", ["center", "topleft"])
@pytest.mark.parametrize(
    "layout, dtype",
    [("NCHW", "float32"), ("NHWC", "float32"), ("NCHW", "uint8"), ("NHWC", "uint8"), ("NCHW", "float16")],
)
def test_boxes_land_in_source_pixels(tmp_path, kind, align, layout, dtype):
    path = om.save_with_meta(tmp_path / "m.onnx", kind=kind, align=align, layout=layout, dtype=dtype)
    detector = edgekit.load(path)
    found = detector(om.scene())
    assert found.labels == ["red", "blue"]
    np.testing.assert_allclose(found.xyxy[0], RECT, atol=1.5)
    np.testing.assert_allclose(found.xyxy[1], expected_const_box(align), atol=1e-3)
    assert found.confidence.tolist() == pytest.approx([0.9, om.CONST_SCORE], abs=1e-3)
    assert found.image_size == (200, 400)


def test_non_square_input_and_other_colours(tmp_path):
    path = om.save_with_meta(tmp_path / "m.onnx", imgsz=(256, 384))
    detector = edgekit.load(path)
    found = detector(om.scene(300, 300, rect=(30, 200, 120, 280), color=(0, 255, 0)))  # green
    assert found.labels[0] == "green"
    np.testing.assert_allclose(found.xyxy[0], (30, 200, 120, 280), atol=1.5)


def test_detections_count_limits_rows(tmp_path):
    path = om.save_with_meta(tmp_path / "m.onnx", kind="detections", with_count=True)
    found = edgekit.load(path)(om.scene())
    assert found.labels == ["red", "blue"]  # the third row scores 0.8 but lies beyond the count


def test_nms_removes_the_duplicate_and_options_apply(tmp_path):
    detector = edgekit.load(om.save_with_meta(tmp_path / "m.onnx"))
    image = om.scene()
    assert len(detector(image, iou=0.99)) == 3  # the shrunk duplicate survives a lax NMS
    assert detector(image, classes=["blue"]).labels == ["blue"]
    assert len(detector(image, conf=0.95)) == 0
    assert len(detector(image, max_det=1)) == 1
    detector.conf = 0.7
    assert detector(image).labels == ["red"]


def test_paths_lists_rgb_and_timings(tmp_path):
    import cv2

    detector = edgekit.load(om.save_with_meta(tmp_path / "m.onnx"))
    image = om.scene()
    cv2.imwrite(str(tmp_path / "a.png"), image)
    results = detector([tmp_path / "a.png", str(tmp_path / "a.png"), image])
    assert [r.labels for r in results] == [["red", "blue"]] * 3
    assert detector(image[..., ::-1].copy(), rgb=True).labels == ["red", "blue"]
    assert detector(image[..., ::-1].copy()).labels == ["blue", "blue"]  # read as BGR, red becomes blue
    detector(image)
    t = detector.timings
    assert t.pre > 0 and t.infer > 0 and t.post > 0 and t.total == pytest.approx(t.pre + t.infer + t.post)
    gray = detector(np.zeros((50, 60), np.uint8))
    assert gray.labels == ["blue"] and gray.image_size == (50, 60)


def test_dynamic_batch_runs_a_list_in_one_call(tmp_path):
    path = om.save_with_meta(tmp_path / "m.onnx")
    model = om.bright_box_model(batch="N")
    meta = om.edgekit_meta()
    om.save(model, path, {meta_mod.KEY: meta.to_json()})
    detector = edgekit.load(path)
    results = detector([om.scene(), om.scene()])
    assert [r.labels for r in results] == [["red", "blue"]] * 2


def test_ultralytics_exports_run(tmp_path):
    packed = om.save(om.bright_box_model(kind="packed"), tmp_path / "p.onnx", om.ultralytics_props())
    found = edgekit.load(packed)(om.scene())
    assert found.labels == ["red", "blue"]
    np.testing.assert_allclose(found.xyxy[0], RECT, atol=1.5)
    e2e = om.save(
        om.bright_box_model(kind="detections_pixels"), tmp_path / "e.onnx", om.ultralytics_props(end2end=True)
    )
    found = edgekit.load(e2e)(om.scene())
    assert found.labels == ["red", "blue"]
    np.testing.assert_allclose(found.xyxy[1], expected_const_box("center"), atol=1e-3)


def test_model_without_metadata_takes_a_fixed_input_size_from_the_model(tmp_path):
    path = om.save(om.bright_box_model(), tmp_path / "bare.onnx")
    bare = edgekit.load(path)  # the input is fixed at 320x320: no --imgsz needed
    assert bare.meta.imgsz == (320, 320) and bare(om.scene()).labels == ["class0", "class2"]
    found = edgekit.load(path, imgsz=320, names=om.CLASSES)(om.scene())
    assert found.labels == ["red", "blue"]
    model = om.bright_box_model()  # the same graph with a dynamic height and width does need it
    for axis, name in ((2, "height"), (3, "width")):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = name
    dynamic = om.save(model, tmp_path / "dynamic.onnx")
    with pytest.raises(MetadataError, match="neither edgekit nor Ultralytics metadata"):
        edgekit.load(dynamic)
    assert edgekit.load(dynamic, imgsz=320)(om.scene()).labels == ["class0", "class2"]


def test_metadata_that_contradicts_the_model_is_refused(tmp_path):
    model = om.bright_box_model()
    cases = [
        (om.edgekit_meta(imgsz=(640, 640)), "image size"),
        (om.edgekit_meta(dtype="uint8"), "input dtype"),
        (om.edgekit_meta(layout="NHWC"), "channels"),
        (meta_mod.ModelMeta("x", "", ["a", "b"], (320, 320)), "scores 3 classes"),
        (
            meta_mod.ModelMeta("x", "", om.CLASSES, (320, 320), outputs=meta_mod.OutputSpec(names=["boxes", "s"])),
            "lacks",
        ),
    ]
    for meta, message in cases:
        path = om.save(model, tmp_path / "m.onnx", {meta_mod.KEY: meta.to_json()})
        with pytest.raises(MetadataError, match=message):
            edgekit.load(path)


def test_bad_files(tmp_path):
    with pytest.raises(EdgekitError, match="model not found"):
        edgekit.load(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(EdgekitError, match="not a loadable ONNX model"):
        edgekit.load(junk)
    with pytest.raises(EdgekitError, match="unknown model type"):
        edgekit.load(junk.rename(tmp_path / "junk.bin"))
    detector = edgekit.load(om.save_with_meta(tmp_path / "m.onnx"))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(EdgekitError, match="cannot decode image"):
        detector(tmp_path / "bad.jpg")
    with pytest.raises(EdgekitError, match="HxWx3"):
        detector(np.zeros((4, 4, 5), np.uint8))


def test_io_binding_gives_the_outputs_of_run(tmp_path):
    from edgekit.runtimes.preprocess import preprocess

    detector = edgekit.load(om.save_with_meta(tmp_path / "m.onnx"), backend="onnxruntime")
    engine = detector.engine
    feeds = [{"images": preprocess(om.scene(rect=r), detector.meta.input, (320, 320))[0]}
             for r in ((100, 50, 300, 150), (10, 10, 60, 190))]
    first = engine.infer(feeds[0])
    first_values = {k: v.copy() for k, v in first.items()}
    for name, value in engine.run(feeds[0]).items():
        np.testing.assert_array_equal(first[name], value)
    second = engine.infer(feeds[1])
    for name, value in engine.run(feeds[1]).items():
        np.testing.assert_array_equal(second[name], value)
    assert any(not np.array_equal(first_values[n], second[n]) for n in second)  # the two frames differ
    assert all(second[n] is first[n] for n in second)  # outputs are written into the same bound arrays


def test_earlier_detections_survive_later_frames(tmp_path):
    detector = edgekit.load(om.save_with_meta(tmp_path / "m.onnx"))
    a = detector(om.scene())
    copies = (a.xyxy.copy(), a.confidence.copy(), a.class_id.copy())
    b = detector(om.scene(300, 300, rect=(30, 200, 120, 280), color=(0, 255, 0)))
    assert b.labels[0] == "green" and not np.array_equal(b.xyxy[0], a.xyxy[0])
    for kept, now in zip(copies, (a.xyxy, a.confidence, a.class_id)):
        np.testing.assert_array_equal(kept, now)
    np.testing.assert_allclose(detector(om.scene()).xyxy, a.xyxy)


def test_openvino_shared_request_gives_the_outputs_of_run(tmp_path):
    ov = pytest.importorskip("openvino")
    from edgekit.runtimes.openvino import OpenVINOEngine
    from edgekit.runtimes.preprocess import preprocess

    onnx_path = om.save_with_meta(tmp_path / "m.onnx")
    ov.save_model(ov.convert_model(str(onnx_path)), str(tmp_path / "m.xml"))
    engine = OpenVINOEngine(tmp_path / "m.xml")
    meta = edgekit.load(onnx_path).meta
    for rect in ((100, 50, 300, 150), (10, 10, 60, 190)):
        feed = {engine.inputs[0].name: preprocess(om.scene(rect=rect), meta.input, (320, 320))[0]}
        shared = {k: v.copy() for k, v in engine.infer(feed).items()}
        for name, value in engine.run(feed).items():
            np.testing.assert_allclose(shared[name], value, rtol=1e-6, atol=1e-6)
