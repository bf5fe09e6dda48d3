"""Install hygiene: no two installed distributions install the same module files (pip lets one overwrite the
other's: with mediapipe's own requirements, cv2 came from opencv-contrib-python, not from the
opencv-python-headless edgekit asks for)."""

from importlib.metadata import distribution, packages_distributions


def module_files(dist_name: str, module: str) -> set[str]:
    files = distribution(dist_name).files or []
    return {f.as_posix() for f in files if f.parts[0] == module and f.name != "__init__.py"}


def test_no_module_has_two_providers():
    clashes = {}
    for module, dists in packages_distributions().items():
        dists = sorted(set(dists))
        for i, a in enumerate(dists):
            for b in dists[i + 1 :]:
                shared = module_files(a, module) & module_files(b, module)
                if shared:  # namespace packages (backports.*, google.*) share only their __init__.py
                    clashes[module] = (a, b, sorted(shared)[:3])
    assert clashes == {}
