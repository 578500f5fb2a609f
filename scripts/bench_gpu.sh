#!/usr/bin/env bash
# The GPU figures of issues 3 and 4 in one pass with a time budget, for a lent GPU.
#
#   scripts/bench_gpu.sh OUTDIR IMAGES_DIR [BUDGET_SECONDS]
#
# IMAGES_DIR holds tubingen.jpg and starry_night.jpg. Stages run in priority order,
# each under `timeout`, skipped once the budget is spent; a failing stage does not
# stop the next, except the smoke test (no GPU, or jaxstyle does not import: stop).
# Everything printed also goes to OUTDIR/bench_gpu.log; bench.py writes its JSON
# reports to OUTDIR. The stages share one persistent compilation cache. STAGES, if
# set, names the stages to run (space-separated); the smoke test always runs.
set -u
out=$1 images=$2 budget=${3:-480}
content=$images/tubingen.jpg style=$images/starry_night.jpg
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$(mktemp -d)}
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.45}  # torch runs beside
py=${PYTHON:-python3}
cd "$here" || exit 1
exec > >(tee "$out/bench_gpu.log") 2>&1

stage() {  # stage NAME MAX_SECONDS COMMAND...
    local name=$1 limit=$2 left=$((budget - SECONDS)) t=$SECONDS
    shift 2
    if [[ -n ${STAGES:-} && " $STAGES " != *" $name "* && $name != smoke ]]; then return 0; fi
    if ((left < 30)); then echo "== $name: skipped, budget spent"; return 1; fi
    ((limit > left)) && limit=$left
    echo "== $name (limit ${limit}s): $*"
    timeout -k 5 "$limit" "$@"
    local rc=$?
    echo "== $name: rc=$rc after $((SECONDS - t)) s (total $SECONDS s)"
    return $rc
}

stage env 30 bash -c "nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv; $py -c 'import sys, jax, jaxlib, flax, optax, orbax.checkpoint as o, torch; print(sys.version.split()[0], \"jax\", jax.__version__, \"jaxlib\", jaxlib.__version__, \"flax\", flax.__version__, \"optax\", optax.__version__, \"orbax\", o.__version__, \"torch\", torch.__version__); print(jax.devices())'"
stage smoke 120 $py -c "
import jax, jaxstyle
assert jax.default_backend() == 'gpu', jax.devices()
r = jaxstyle.stylize('$content', '$style', size=64, steps=5)
print('smoke ok', r.image.shape, {k: f'{v:.4g}' for k, v in r.final.items()}, r.timings)
" || exit 1

# Issue 4: 500 Adam steps on one 512 px image (target <= 1 s), per driver and dtype.
stage steps500 170 $py scripts/bench_steps.py --size 512 --steps 500 --repeats 2 \
    --drivers device,python --compute-dtypes bfloat16,float32 --content "$content" --style "$style"
# Issue 4: the PyTorch ratio and % of dense peak at 512 px (float32 = TF32 on both sides).
stage bench_adam 150 $py scripts/bench.py --sizes 512 --batch 1,8 --optimizers adam \
    --steps 20 --repeats 5 --no-probes --content "$content" --style "$style" \
    --json "$out/bench_adam.json"
# Issue 4: % of dense bf16 peak at batch 8 (target >= 50%).
stage bench_bf16 90 $py scripts/bench.py --sizes 512 --batch 1,8 --optimizers adam \
    --compute-dtype bfloat16 --frameworks jax --steps 20 --repeats 5 --no-probes \
    --content "$content" --style "$style" --json "$out/bench_bf16.json"
# Issue 3: 8 sweep cells vmapped vs one after another at 512 px (goal 3x).
for driver in python device; do
    stage sweep_adam_$driver 120 $py scripts/bench_sweep.py --size 512 --steps 100 --cells 8 \
        --optimizer adam --driver $driver --content "$content" --style "$style"
done
stage bench_lbfgs 150 $py scripts/bench.py --sizes 512 --batch 1,8 --optimizers lbfgs \
    --steps 10 --repeats 3 --no-probes --content "$content" --style "$style" \
    --json "$out/bench_lbfgs.json"
for driver in python device; do
    stage sweep_lbfgs_$driver 120 $py scripts/bench_sweep.py --size 512 --steps 20 --cells 8 \
        --optimizer lbfgs --driver $driver --content "$content" --style "$style"
done
# Issue 4: rematerialisation of VGG19's blocks, memory and time (kept only if it saves memory).
stage remat 90 $py scripts/bench_remat.py --sizes 512,1024 --compute-dtype bfloat16 --repeats 5
stage cli 90 bash -c "time $py -m jaxstyle stylize '$content' '$style' -o '$out/gpu_tubingen_starry.png' --size 512 --steps 500"
stage probes 120 $py scripts/bench.py --sizes 512 --batch 1 --optimizers adam --steps 20 \
    --repeats 3 --content "$content" --style "$style" --json "$out/bench_probes.json"
echo "== done in $SECONDS s"
