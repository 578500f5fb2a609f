"""Cold and warm start of the CLI: ``jaxstyle stylize`` from process start to its result.

Runs ``jaxstyle stylize`` (built-in example images, ``--steps 1``) in fresh
processes: first with an empty persistent compilation cache ("cold"), then
again reading the cache the first one wrote ("warm"). Prints the wall time of
each and the run record's compile / load / targets seconds. ``--zlib`` hides
the zstandard module, so jax compresses its cache with zlib, as it does when
zstandard is not installed.

    python scripts/bench_startup.py --size 256
    python scripts/bench_startup.py --size 256 --zlib
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCH = (
    "import sys\n"
    "if sys.argv.pop(1) == 'zlib': sys.modules['zstandard'] = None\n"
    "from jaxstyle.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--optimizer", choices=("adam", "lbfgs"), help="(the preset's default)")
    ap.add_argument("--zlib", action="store_true", help="compress the cache with zlib")
    a = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    env = {**os.environ, "JAXSTYLE_CACHE": str(scratch / "cache"), "TQDM_DISABLE": "1"}
    args = ["stylize", "-o", str(scratch / "out.png"), "-q", "--size", str(a.size)]
    args += ["--steps", str(a.steps)] + (["--optimizer", a.optimizer] if a.optimizer else [])
    codec = "zlib" if a.zlib else "zstd"
    print(f"jaxstyle stylize {' '.join(args[3:])}, cache compressed with {codec}")
    for run in ("cold", "warm"):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCH, codec, *args], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(proc.stderr[-2000:])
        timings = json.loads((scratch / "out.json").read_text())["timings"]
        parts = ", ".join(f"{k} {timings[k]:.1f} s" for k in ("load", "targets", "compile"))
        print(f"{run}: {wall:5.1f} s from process start to the written result ({parts})")


if __name__ == "__main__":
    main()
