"""What the thin runtime costs on a device: the installed size of `edgekit[onnxruntime]` and `edgekit[litert]`
(each in a fresh virtual environment, torch checked absent) and the peak memory of `edgekit predict` and
`edgekit profile` on a t/n model at 320 (yolo26n, converted here to ONNX and TFLite).

    python benchmarks/device_footprint.py [--extras onnxruntime,litert] [--imgsz 320] [--keep DIR]

Needs the converter side in the running interpreter (to make the models) and package-index access for the
fresh environments. Prints one table; peak RSS is the child's ru_maxrss as the kernel reports it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# distribution and library-folder names -> the package a user knows (opencv-python-headless ships cv2 and
# opencv_python_headless.libs)
ALIASES = {"cv2": "opencv", "opencv_python_headless": "opencv", "ai_edge_litert": "ai-edge-litert"}


def tree_mb(path: Path) -> float:
    """Size of the files under `path` in MB (1e6 bytes)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def site_packages(env: Path) -> Path:
    return next(env.glob("lib/python*/site-packages"))


def packages_mb(site: Path) -> dict[str, float]:
    """Size per top-level entry of site-packages (package folders, .libs folders and .dist-info merged)."""
    sizes: dict[str, float] = {}
    for entry in site.iterdir():
        name = entry.name.split("-")[0].split(".")[0].lower()
        name = ALIASES.get(name, name)
        sizes[name] = sizes.get(name, 0.0) + (tree_mb(entry) if entry.is_dir() else entry.stat().st_size / 1e6)
    return sizes


def make_env(where: Path, extra: str) -> tuple[Path, float, dict[str, float]]:
    """A fresh venv with `edgekit[extra]` installed from this checkout; (env, MB added, MB per package)."""
    venv.create(where, with_pip=True, clear=True)
    python = where / "bin" / "python"
    before = packages_mb(site_packages(where))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[{extra}]"], check=True)
    after = packages_mb(site_packages(where))
    added = {k: v for k, v in after.items() if v - before.get(k, 0.0) > 0.01}
    check = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    if check.returncode == 0:
        raise SystemExit(f"edgekit[{extra}] pulled torch in")
    return where, sum(added.values()), added


def peak_rss_mb(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Run a command; (its peak RSS in MB, exit status)."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def convert_models(out: Path, imgsz: int, formats: str) -> dict[str, Path]:
    """yolo26n (seeded weights, the end-to-end head's runtime top-k) at `imgsz` in each format."""
    found = {f: next(out.glob(f"yolo26n*.{f}"), None) for f in formats.split(",")}
    if not all(found.values()):
        subprocess.run([sys.executable, "-m", "edgekit.cli", "convert", "yolo26n", "--imgsz", str(imgsz), "--to",
                        formats, "--topk", "runtime", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
        found = {f: next(out.glob(f"yolo26n*.{f}")) for f in formats.split(",")}
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="onnxruntime,litert")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--keep", help="keep the environments and models in this folder")
    parser.add_argument("--smoke", action="store_true", help="CI: no new environment, no conversion: peak RSS of "
                                                             "predict and profile on the bundled shapes model here")
    args = parser.parse_args()
    if args.smoke:
        model, image = ROOT / "edgekit" / "assets" / "shapes.onnx", ROOT / "edgekit" / "assets" / "shapes.jpg"
        cli = [sys.executable, "-m", "edgekit.cli"]
        predict, rc1 = peak_rss_mb([*cli, "predict", str(model), str(image)], ROOT)
        profile, rc2 = peak_rss_mb([*cli, "profile", str(model), "--runs", "3", "--no-sweep", "--quiet"], ROOT)
        print(f"this environment, {model.name}: predict peak RSS {predict:.0f} MB, profile peak RSS {profile:.0f} MB")
        return rc1 or rc2
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="edgekit-footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    formats = ",".join(sorted({"onnxruntime": "onnx", "litert": "tflite"}[e] for e in extras))
    models = convert_models(work / "models", args.imgsz, formats)
    image = ROOT / "edgekit" / "assets" / "shapes.jpg"
    rows = []
    for extra in extras:
        env, total, added = make_env(work / f"env-{extra}", extra)
        model = models["onnx" if extra == "onnxruntime" else "tflite"]
        exe = str(env / "bin" / "edgekit")
        predict, rc1 = peak_rss_mb([exe, "predict", str(model), str(image)], work)
        profile, rc2 = peak_rss_mb([exe, "profile", str(model), "--runs", "50", "--no-sweep", "--quiet"], work)
        biggest = sorted(added.items(), key=lambda kv: -kv[1])[:4]
        rows.append((extra, total, biggest, model.name, predict, profile, rc1 or rc2))
    print(f"{'extra':<12} {'installed MB':>12}  {'largest packages (MB)':<58} {'model':<15} "
          f"{'predict peak RSS':>16} {'profile peak RSS':>16}")
    for extra, total, biggest, model, predict, profile, failed in rows:
        parts = ", ".join(f"{k} {v:.0f}" for k, v in biggest)
        note = "  (a command failed)" if failed else ""
        print(f"{extra:<12} {total:>12.0f}  {parts:<58} {model:<15} {predict:>13.0f} MB {profile:>13.0f} MB{note}")
    print(f"(yolo26n at {args.imgsz}, seeded weights; environments in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
