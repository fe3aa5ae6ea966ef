#!/usr/bin/env bash
# Every GPU check in one go, for a machine with an NVIDIA GPU (and a time limit): the
# throughput benchmark (benchmarks/gpu_throughput.py, its JSON), the GPU tests (`-m gpu`)
# and, where it exists, the transformer family's benchmark. Each step gets a share of
# BUDGET seconds (default 480); what doesn't fit is reported as not run.
#
#   bash benchmarks/gpu_checks.sh OUT_DIR [BUDGET]
#   FIRST=sdxl_train THEN=sdxl_fp8,sd15_shoot bash benchmarks/gpu_checks.sh OUT_DIR 540
#
# FIRST: the sections run before the tests (default sdxl_shoot,sdxl_train), THEN: after them
# (default sdxl_fp8,warm_start,sd15_shoot).
set -u
out=${1:-gpu-checks}
budget=${2:-480}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
# Stop at once when the packages don't import (nothing below could run).
python3 -c "import torch, diffusers, peft, transformers, huggingface_hub; from diffusers import StableDiffusionXLPipeline; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__, 'huggingface_hub', huggingface_hub.__version__)" 2>&1 | tail -3 | tee -a "$out/gpu.txt"
PYTHONPATH="$root/src:${PYTHONPATH:-}" python3 -c "import packshot.shoot.render, packshot.train.loop" || exit 1
python3 -c "import torchao; print('torchao', torchao.__version__)" 2>&1 | tail -1 | tee -a "$out/gpu.txt"

cd "$root/benchmarks" || exit 1
# 1. The figures the targets need: SDXL shooting and training.
python3 gpu_throughput.py --sections "${FIRST:-sdxl_shoot,sdxl_train}" \
    --json "$out/gpu_throughput.json" --deadline $(( $(left) - 180 )) 2>&1 | tee "$out/bench.log"
# 2. The GPU tests: the compiled and fp8 paths against eager.
cd "$root" || exit 1
timeout $(( $(left) > 180 ? 180 : $(left) )) python3 -m pytest -q -p no:cacheprovider -m gpu \
    -s tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"
# 3. fp8, a warm start from the compile cache, SD 1.5 (time kept for step 4 if it runs).
cd "$root/benchmarks" || exit 1
reserve=0; [ -f flux2_klein.py ] && reserve=100
python3 gpu_throughput.py --append --sections "${THEN:-sdxl_fp8,warm_start,sd15_shoot}" \
    --json "$out/gpu_throughput.json" --deadline $(( $(left) - reserve )) 2>&1 | tee -a "$out/bench.log"
# 4. The transformer family, when it has its benchmark.
if [ -f flux2_klein.py ] && [ "$(left)" -gt 60 ]; then
    timeout $(( $(left) - 10 )) python3 flux2_klein.py --gpu --json "$out/flux2_klein.json" \
        2>&1 | tee "$out/flux2.log"
fi
echo "done in $(( $(date +%s) - start )) s"
