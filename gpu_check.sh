#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (CuPy installed; PyTorch with CUDA for the reference columns):
#   1. every test, with the GPU cases on the real CuPy (no stand-in);
#   2. the GPU training benchmark: ours vs PyTorch with SDPA and eager attention, in one process;
#   3. generation with and without the KV cache.
# The tables print as Markdown, ready to paste into BENCHMARKS.md with the machine line above them.
set -euo pipefail
cd "$(dirname "$0")"
python -c "import tinygrad_proust as tp, sys; sys.exit(0 if tp.gpu_available() else 'no usable GPU: see README (GPU)')"
python -m pytest -q --gpu=real
python bench.py --device gpu
python bench.py --device gpu --generate
