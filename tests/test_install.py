"""Install hygiene: no two installed distributions provide the same top-level module (pip would let one
overwrite the other's files: with mediapipe's own requirements, cv2 came from opencv-contrib-python, not from
the opencv-python-headless edgekit asks for)."""

import importlib.util
from importlib.metadata import packages_distributions


def test_no_module_has_two_providers():
    clashes = {}
    for module, dists in packages_distributions().items():
        if len(set(dists)) < 2 or not module.isidentifier():
            continue
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin not in (None, "namespace"):  # namespace packages are shared by design
            clashes[module] = sorted(set(dists))
    assert clashes == {}
