"""Write the tiny real ``torch.save`` files that tests/test_weights.py reads without torch.

Run with torch installed (the files in the repository come from torch 2.13.0)::

    python scripts/make_torch_fixture.py [tests/data]

Writes ``torch_zip.pth`` (the default zip format), ``torch_legacy.pth``
(``_use_new_zipfile_serialization=False``) and ``torch_expected.npz`` (the
same tensors as NumPy arrays; bfloat16 ones as float32).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def tensors() -> dict[str, torch.Tensor]:
    """A real state dict (with ``_metadata``) plus views of every awkward kind."""
    torch.manual_seed(0)
    state = torch.nn.Conv2d(3, 4, 3).state_dict()  # weight (4, 3, 3, 3), bias (4,)
    base = torch.arange(24, dtype=torch.uint8)
    state["transposed"] = torch.randn(3, 5).t()  # non-contiguous, strides (1, 5)
    state["offset"] = base[5:11]  # storage offset 5
    state["offset_2d"] = base.view(4, 6)[1:, ::2]  # same storage, offset and strides
    state["shared"] = state["weight"][1]  # shares the weight's storage
    state["scalar"] = torch.tensor(7, dtype=torch.int64)  # 0-d
    state["half"] = torch.randn(2, 3).to(torch.float16)
    state["bf16"] = torch.randn(5).to(torch.bfloat16)
    state["empty"] = torch.zeros(0, 3)
    return state


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state = tensors()
    torch.save(state, out / "torch_zip.pth")
    torch.save(state, out / "torch_legacy.pth", _use_new_zipfile_serialization=False)
    expected = {
        k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in state.items()
    }
    np.savez(out / "torch_expected.npz", **expected)
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('torch_*')))} to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data"))
