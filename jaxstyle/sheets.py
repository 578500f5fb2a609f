"""Labelled grids of same-sized images: a sweep's contact sheet, a batch chunk's row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxstyle import images as image_io


def labelled_grid(
    images: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], *, pad: int = 4
) -> np.ndarray:
    """(N, H, W, 3) images in [0, 1] as a grid of ``len(row_labels)`` rows and
    ``len(col_labels)`` columns (image i in row i // columns, column i % columns),
    labelled on the left and on top (no top row when every column label is empty):
    an (H', W', 3) uint8 picture on white."""
    rows, columns = len(row_labels), len(col_labels)
    if rows * columns != len(images):
        raise ValueError(f"{len(images)} images do not fill {rows}x{columns}")
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text: str) -> tuple[int, int]:
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        # PIL types the box as floats (for a fractional xy); from (0, 0) it holds ints
        return int(right - left), int(bottom - top)

    h, w = images.shape[1:3]
    text_h = max(size(label)[1] for label in ["Ag", *col_labels])
    col_w = max([w, *(size(label)[0] for label in col_labels)]) + pad
    left = max([0, *(size(label)[0] for label in row_labels)]) + 2 * pad
    top = text_h + 2 * pad if any(col_labels) else pad
    sheet = Image.new("RGB", (left + columns * col_w + pad, top + rows * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(col_labels):
        x = left + c * col_w + (col_w - size(label)[0]) // 2
        draw.text((x, pad), label, fill="black", font=font)
    for r, label in enumerate(row_labels):
        y = top + r * (h + pad)
        draw.text((pad, y + (h - text_h) // 2), label, fill="black", font=font)
        for c in range(columns):
            tile = Image.fromarray(image_io.to_uint8(images[r * columns + c]))
            sheet.paste(tile, (left + c * col_w + (col_w - w) // 2, y))
    return np.asarray(sheet)
