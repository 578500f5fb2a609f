"""Progress bars: hidden by progress=False, and by tqdm's own TQDM_DISABLE."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "from jaxstyle.progress import progress_bar\nbar = progress_bar({}, total=3, desc='x')\n"
SHOW += "bar.update(3)\nbar.close()\n"


@pytest.mark.parametrize(
    "progress, environment, shown",
    [(True, {}, True), (False, {}, False), (True, {"TQDM_DISABLE": "1"}, False)],
    ids=["shown", "progress off", "TQDM_DISABLE"],
)
def test_progress_bar_is_hidden_by_progress_off_or_tqdm_disable(progress, environment, shown):
    """In a fresh process: tqdm reads TQDM_* when it is imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    proc = subprocess.run(
        [sys.executable, "-c", SHOW.format(progress)],
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ("3/3" in proc.stderr) == shown, proc.stderr
