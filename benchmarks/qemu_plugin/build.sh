#!/usr/bin/env bash
# Build the instruction-counting QEMU plugin: build.sh [OUT.so] (default: insn_count.so next to this script).
# Needs gcc; the plugin loads into the dynamic qemu-aarch64 (Debian's qemu-user), not qemu-aarch64-static.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/insn_count.so}
# written beside, then renamed: a qemu that has the old plugin loaded keeps running on it
gcc -O2 -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -fvisibility=hidden -o "$OUT.$$" "$HERE/insn_count.c"
# every qemu_plugin_ symbol the plugin needs must be one qemu-aarch64 exports
QEMU=$(command -v qemu-aarch64 || true)
if [ -n "$QEMU" ]; then
    missing=$(comm -23 <(nm -D --undefined-only "$OUT.$$" | awk '/qemu_plugin_/ {print $2}' | sort) \
                       <(nm -D --defined-only "$QEMU" | awk '/qemu_plugin_/ {print $3}' | sort))
    if [ -n "$missing" ]; then echo "qemu-aarch64 does not export: $missing" >&2; rm -f "$OUT.$$"; exit 1; fi
fi
mv -f "$OUT.$$" "$OUT"
echo "$OUT"
