"""Cold and warm start of the CLI: ``jaxstyle stylize`` from process start to its result.

Runs ``jaxstyle stylize`` (built-in example images unless ``--content`` and
``--style`` are given, ``--steps 1``) in fresh processes: first with an empty
persistent compilation cache ("cold"), then ``--warm-runs`` times reading the
cache the first one wrote ("warm"; with several, the best and the median).
Prints the wall time of each, the time from process start to the first
optimisation step (the step's executable is wrapped in the launched process to
note when it is first called), and the run record's compile / load / targets
seconds. ``--zlib`` hides the zstandard module, so jax compresses its cache
with zlib, as it does when zstandard is not installed.

    python scripts/bench_startup.py --size 256 --warm-runs 5
    python scripts/bench_startup.py --size 256 --content ../shared/images/tubingen.jpg \
        --style ../shared/images/starry_night.jpg
    python scripts/bench_startup.py --size 256 --zlib
    python scripts/bench_startup.py --size 256 --conv-algorithm direct
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCH = (
    "import sys, time\n"
    "if sys.argv.pop(1) == 'zlib': sys.modules['zstandard'] = None\n"
    "import jaxstyle.optimize as optimize\n"
    "compile_once = optimize.compile_once\n"
    "def timed(*a, **k):  # the step's executable, as optimize.run compiles it\n"
    "    compiled = compile_once(*a, **k)\n"
    "    def call(*args):\n"
    "        print(f'first step at {time.time()}', file=sys.stderr, flush=True)\n"
    "        optimize.compile_once = compile_once\n"
    "        return compiled(*args)\n"
    "    return call\n"
    "optimize.compile_once = timed\n"
    "from jaxstyle.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--optimizer", choices=("adam", "lbfgs"), help="(the preset's default)")
    ap.add_argument("--zlib", action="store_true", help="compress the cache with zlib")
    ap.add_argument("--conv-algorithm", choices=("auto", "direct", "winograd"), default="auto")
    ap.add_argument("--warm-runs", type=int, default=1, help="warm runs after the cold one")
    ap.add_argument("--content", help="content image (default: the built-in example)")
    ap.add_argument("--style", help="style image (default: the built-in example)")
    a = ap.parse_args()
    if bool(a.content) != bool(a.style):
        ap.error("--content and --style go together")
    scratch = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    env = {**os.environ, "JAXSTYLE_CACHE": str(scratch / "cache"), "TQDM_DISABLE": "1"}
    args = ["stylize", "-o", str(scratch / "out.png"), "-q", "--size", str(a.size)]
    args += ["--steps", str(a.steps)] + (["--optimizer", a.optimizer] if a.optimizer else [])
    args += ["--conv-algorithm", a.conv_algorithm]
    args += [a.content, a.style] if a.content and a.style else []
    codec = "zlib" if a.zlib else "zstd"
    print(f"jaxstyle stylize {' '.join(args[3:])}, cache compressed with {codec}")
    firsts = []
    for run in ["cold"] + ["warm"] * a.warm_runs:
        t, launched = time.perf_counter(), time.time()
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCH, codec, *args], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(proc.stderr[-2000:])
        first = float(proc.stderr.split("first step at ")[1].split()[0]) - launched
        firsts += [first] if run == "warm" else []
        timings = json.loads((scratch / "out.json").read_text())["timings"]
        parts = ", ".join(f"{k} {timings[k]:.1f} s" for k in ("load", "targets", "compile"))
        print(
            f"{run}: {first:5.1f} s from process start to the first step, {wall:5.1f} s to "
            f"the written result ({parts})"
        )
    if len(firsts) > 1:
        print(
            f"warm, {len(firsts)} runs: first step after {min(firsts):.2f} s at best, "
            f"{statistics.median(firsts):.2f} s median"
        )


if __name__ == "__main__":
    main()
