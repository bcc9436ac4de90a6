#!/usr/bin/env bash
# Installs libtorch 2.13.0 (the version tch 0.26 links) from the PyPI torch wheel into
# .libtorch/, the folder .cargo/config.toml points LIBTORCH at. Idempotent.
#
# CPU machines get the torch wheel without its CUDA dependencies, plus the two small CUDA
# runtime wheels libtorch_cpu.so still links (libcudart, libcupti), and drop the CUDA
# libraries (about 630 MB on disk, 20 s). Machines with an NVIDIA driver get the full
# CUDA wheels instead (about 4.7 GB, a minute or two).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."

TORCH=2.13.0
DEST=.libtorch
STAMP="$DEST/.installed"
PY=${PYTHON:-python3}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=cuda
else
  flavour=cpu
fi

if [ -f "$STAMP" ]; then
  have=$(cat "$STAMP")
  # A CUDA build also runs on the CPU, so it is never downgraded.
  if [ "$have" = "$TORCH-$flavour" ] || [ "$have" = "$TORCH-cuda" ]; then
    exit 0
  fi
fi

echo "glassbox: installing libtorch $TORCH ($flavour) into $DEST"
rm -rf "$DEST"
if [ "$flavour" = cuda ]; then
  "$PY" -m pip install --disable-pip-version-check --quiet --target "$DEST" "torch==$TORCH"
else
  "$PY" -m pip install --disable-pip-version-check --quiet --no-deps --target "$DEST" \
    "torch==$TORCH" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  lib="$DEST/torch/lib"
  rm -f "$lib"/libtorch_cuda*.so "$lib"/libc10_cuda.so "$lib"/libtorch_nvshmem.so \
        "$lib"/libcaffe2_nvrtc.so "$lib"/libtorch_python.so
  rm -f "$DEST"/nvidia/*/lib/libnvperf_*
fi
echo "$TORCH-$flavour" > "$STAMP"
du -sh "$DEST" | sed 's/^/glassbox: libtorch on disk: /'
