#!/usr/bin/env bash
# The GPU checks in one run, on a machine with CUDA, PyTorch and Triton installed (a
# GPU machine without a registry: Python wheels it lacks may be placed in .whl/).
#   1. the card, driver, torch and Triton versions;
#   2. the fused Triton kernel's gradients against the float64 reference, on the GPU, and
#      the graph kernel's CUDA graph against the CPU step (float64);
#   3. bench/trainer.py at (W, M) = (16, 4096), (256, 1024), (2048, 256), 1024 samples,
#      every path side by side (loop, prefix sums, dense, compiled, graph, fused) with the
#      measured fp32 rate and each path's fraction of the limit it implies;
#   4. the default sweep's networks trained on the GPU (planner + trainer, no tracking),
#      kernel auto and kernel graph, compared with a CPU reference when
#      bench/default-cpu.json exists (the 2-core CPU's times: bench/RESULTS.md).
# Output goes to stdout and, when OUT is set, to $OUT/gpu.log.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/rs-site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/rs-site"
fi
LOG=${OUT:-/tmp}/gpu.log
STEPS=${STEPS:-100}
{
echo "== 1. machine ($(date -u +%F))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
echo "== 2. fused gradients vs float64 on the GPU"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/train/test_fused.py -k "cuda or follows_the_dense" 2>&1 | tail -5
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/train/test_graph_kernel.py -k cuda 2>&1 | tail -3
echo "== 3. trainer paths side by side (fp32, Adam, $STEPS steps, 1024 samples)"
for wm in "16 4096" "256 1024" "2048 256"; do
    set -- $wm
    python3 bench/trainer.py --device cuda --compile --graph --width "$1" --networks "$2" \
        --samples 1024 --steps "$STEPS" --loop-networks 4 2>&1 | grep -v Warning
done
echo "== 4. the default sweep's networks on the GPU"
ref=(); [ -f bench/default-cpu.json ] && ref=(--reference bench/default-cpu.json)
for kernel in auto graph; do
    python3 bench/gpu_default.py configs/default.yaml --device cuda --kernel $kernel "${ref[@]}" 2>&1 | tail -4
done
} 2>&1 | tee "$LOG"
