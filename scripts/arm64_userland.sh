#!/usr/bin/env bash
# An emulated Debian bookworm arm64 userland holding edgekit's thin runtime (no torch): numpy, onnxruntime,
# ai-edge-litert, ncnn, opencv-python-headless, tqdm, openvino (if WITH_OPENVINO=1) and edgekit itself,
# the aarch64 wheels a Pi picks. Used by scripts/arm64_check.sh and benchmarks/arm_estimate.py.
#
#   apt-get install -y qemu-user-static debootstrap    # once (qemu-user too for TCG plugins)
#   scripts/arm64_userland.sh [WORKDIR]                  # default /tmp/edgekit-arm64; ~10 min the first time
#
# Afterwards: WORKDIR/rootfs (its proc/cpuinfo is a Raspberry Pi 5's, for `qemu-aarch64 -L`) and WORKDIR/site
# (PYTHONPATH for the emulated python3.11). Recipe and pitfalls: README section "On the device" (aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WORK=${1:-/tmp/edgekit-arm64}
ROOTFS=$WORK/rootfs
SITE=$WORK/site
WHEELS=$WORK/wheels
PYTHON=${PYTHON:-python3}
# what pip on a bookworm Pi (glibc 2.36) accepts, newest first, so the same wheels are picked as on the device
PLATFORMS=()
for minor in $(seq 36 -1 17); do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done
PLATFORMS+=(--platform manylinux2014_aarch64)
WHEEL_FLAGS=(--only-binary=:all: "${PLATFORMS[@]}" --python-version 3.11 --implementation cp)
mkdir -p "$WORK"

if [ ! -x "$ROOTFS/usr/bin/python3.11" ]; then
    echo "== debootstrap (first stage) of bookworm arm64 into $ROOTFS"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3.11,python3.11-venv,libstdc++6,libgomp1,ca-certificates bookworm "$ROOTFS" >/dev/null
    # the first stage fetches the packages (those debootstrap/base lists) without unpacking them
    for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$ROOTFS" --keep-directory-symlink
    done
fi
# onnxruntime crashes on import if it reads the host's x86 /proc/cpuinfo: qemu -L serves this Pi 5 one instead
rm -rf "$ROOTFS/proc" && mkdir -p "$ROOTFS/proc"
cp tests/fixtures/devices/rpi5/proc/cpuinfo "$ROOTFS/proc/cpuinfo"

install_wheels() {  # install_wheels MODULE PACKAGE...: download and unpack the aarch64 wheels unless MODULE is there
    local module=$1; shift
    [ -d "$SITE/$module" ] && return 0
    echo "== aarch64 wheels of $* into $SITE"
    mkdir -p "$WHEELS/$module"
    "$PYTHON" -m pip download --quiet "${WHEEL_FLAGS[@]}" -d "$WHEELS/$module" "$@"
    "$PYTHON" -m pip install --quiet --no-deps "${WHEEL_FLAGS[@]}" --target "$SITE" "$WHEELS/$module"/*.whl
}
install_wheels onnxruntime "numpy<2.4" onnxruntime opencv-python-headless ai-edge-litert tqdm
install_wheels ncnn --no-deps ncnn
if [ "${WITH_OPENVINO:-0}" = 1 ]; then install_wheels openvino --no-deps openvino openvino-telemetry; fi

echo "== edgekit itself (pure Python) into $SITE"
rm -rf "$SITE"/edgekit "$SITE"/edgekit-*.dist-info
"$PYTHON" -m pip install --quiet --no-deps --target "$SITE" "$REPO"
if [ -d "$SITE/torch" ]; then echo "torch was installed: the thin runtime must not need it" >&2; exit 1; fi
du -sm "$SITE" | awk '{print "   installed: " $1 " MB in the aarch64 site-packages"}'
