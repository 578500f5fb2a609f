"""Built-in example images, so ``jaxstyle stylize`` runs without any image files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jaxstyle.errors import JaxstyleError

_SEED = 1889  # the year of the painting that inspired example_style


def example_content() -> Path:
    """Path of matplotlib's bundled sample photo (Grace Hopper, 600x512 JPEG); found
    without importing matplotlib (0.1 s of a warm start)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise JaxstyleError("matplotlib's sample photo is unavailable (no matplotlib); give images")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise JaxstyleError(f"matplotlib's sample photo {path} is missing; give images")
    return path


# Palettes, RGB in [0, 1].
_SKY = np.array(
    [
        [0.06, 0.12, 0.40],  # ultramarine, deep
        [0.10, 0.22, 0.58],  # ultramarine
        [0.16, 0.36, 0.72],  # cobalt
        [0.30, 0.50, 0.80],  # light cobalt
        [0.52, 0.68, 0.88],  # pale blue
        [0.78, 0.86, 0.92],  # blue-white
        [0.24, 0.46, 0.56],  # teal
    ]
)
_SKY_WEIGHTS = np.array([0.20, 0.24, 0.20, 0.14, 0.10, 0.05, 0.07])
_LIGHT = np.array(
    [
        [0.98, 0.86, 0.22],  # cadmium yellow
        [1.00, 0.94, 0.55],  # pale yellow
        [0.98, 0.97, 0.86],  # warm white
        [0.92, 0.70, 0.18],  # ochre
        [0.60, 0.76, 0.90],  # pale blue ring
    ]
)
_LIGHT_WEIGHTS = np.array([0.32, 0.22, 0.14, 0.14, 0.18])
_FAR_HILLS = np.array([[0.20, 0.30, 0.52], [0.30, 0.40, 0.60], [0.16, 0.26, 0.42]])
_NEAR_HILLS = np.array([[0.06, 0.10, 0.26], [0.10, 0.20, 0.22], [0.14, 0.18, 0.34]])
_CYPRESS = np.array(
    [[0.03, 0.05, 0.04], [0.08, 0.12, 0.07], [0.06, 0.10, 0.16], [0.20, 0.17, 0.08]]
)
_CYPRESS_WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])

# (x, y, radius) in units of the image side; the last one is the moon.
_STARS = np.array(
    [
        [0.30, 0.12, 0.030],
        [0.50, 0.08, 0.025],
        [0.72, 0.20, 0.032],
        [0.08, 0.40, 0.022],
        [0.26, 0.56, 0.026],
        [0.66, 0.60, 0.024],
        [0.90, 0.48, 0.030],
        [0.46, 0.66, 0.018],
        [0.86, 0.13, 0.060],
    ]
)
# Big swirls: (x, y, core radius, strength; the sign is the turning direction).
_VORTICES = np.array([[0.40, 0.36, 0.11, 1.6], [0.63, 0.40, 0.09, -1.3], [0.20, 0.26, 0.08, 0.8]])


def _horizon(x: np.ndarray) -> np.ndarray:
    return 0.80 - 0.05 * np.sin(2.0 * np.pi * (0.9 * x + 0.1)) + 0.015 * np.sin(19.0 * x)


def _in_cypress(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = np.clip((1.02 - y) / 0.92, 0.0, 1.0)  # 0 at the foot, 1 at the tip
    flames = 1.0 + 0.35 * np.sin(38.0 * y) * np.sin(7.0 * y + 1.0)
    half_width = 0.07 * (1.0 - t) ** 0.9 * flames + 0.004
    centre = 0.16 + 0.025 * np.sin(6.0 * y)
    return (np.abs(x - centre) < half_width) & (y > 0.10)


def _ridge(x: np.ndarray) -> np.ndarray:
    """The second, nearer hill line below the horizon."""
    return _horizon(x) + 0.09 + 0.03 * np.sin(2.0 * np.pi * (1.4 * x + 0.6))


def _flow(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit stroke directions at (x, y): wind, swirls, star halos, hills, cypress."""
    u = 1.0 + 0.0 * x
    v = 0.25 * np.sin(7.0 * x + 4.0 * y)
    for cx, cy, core, strength in _VORTICES:
        dx, dy = x - cx, y - cy
        k = strength * core / (dx * dx + dy * dy + core * core)
        u, v = u - k * dy, v + k * dx
    for cx, cy, radius in _STARS:
        dx, dy = x - cx, y - cy
        k = 6.0 * radius / (dx * dx + dy * dy + radius * radius)
        u, v = u - k * dy, v + k * dx
    below = y > _horizon(x)
    slope = (_horizon(x + 1e-3) - _horizon(x)) / 1e-3
    u = np.where(below, 1.0, u)
    v = np.where(below, slope + 0.3 * np.sin(30.0 * y), v)
    tree = _in_cypress(x, y)
    u = np.where(tree, 0.35 * np.sin(45.0 * y + 9.0 * x), u)
    v = np.where(tree, -1.0, v)
    norm = np.sqrt(u * u + v * v) + 1e-9
    return u / norm, v / norm


def _trace(starts: np.ndarray, steps: int, step: float) -> np.ndarray:
    """Streamlines of :func:`_flow` from (N, 2) starts: (N, steps + 1, 2)."""
    points = [starts]
    p = starts
    for _ in range(steps):
        u, v = _flow(p[:, 0], p[:, 1])
        p = p + step * np.stack([u, v], axis=-1)
        points.append(p)
    return np.stack(points, axis=1)


def _pick(rng: np.random.Generator, palette: np.ndarray, weights: np.ndarray, n: int):
    colors = palette[rng.choice(len(palette), size=n, p=weights / weights.sum())]
    return np.clip(colors + rng.normal(0.0, 0.035, size=colors.shape), 0.0, 1.0)


def _stroke_colors(rng: np.random.Generator, starts: np.ndarray) -> np.ndarray:
    x, y = starts[:, 0], starts[:, 1]
    n = len(starts)
    colors = _pick(rng, _SKY, _SKY_WEIGHTS, n)
    # Lighter strokes along the rims of the big swirls.
    for cx, cy, core, _ in _VORTICES:
        rim = np.exp(-(((np.hypot(x - cx, y - cy) - 1.3 * core) / (0.35 * core)) ** 2))
        light = rng.random(n) < 0.55 * rim
        colors[light] = _pick(rng, _SKY[3:6], np.array([1.0, 1.0, 0.6]), int(light.sum()))
    for cx, cy, radius in _STARS:
        near = np.hypot(x - cx, y - cy) < radius * rng.uniform(1.3, 2.6, n)
        colors[near] = _pick(rng, _LIGHT, _LIGHT_WEIGHTS, int(near.sum()))
    far = y > _horizon(x)
    colors[far] = _pick(rng, _FAR_HILLS, np.ones(3), int(far.sum()))
    near = y > _ridge(x)
    colors[near] = _pick(rng, _NEAR_HILLS, np.ones(3), int(near.sum()))
    tree = _in_cypress(x, y)
    colors[tree] = _pick(rng, _CYPRESS, _CYPRESS_WEIGHTS, int(tree.sum()))
    return colors


def _draw_strokes(draw, rng, scale, starts, steps, step, width):
    """Draw a thick stroke along the flow from each (x, y) start, each with a lighter ridge."""
    lines = _trace(starts, steps, step) * scale
    colors = _stroke_colors(rng, starts)
    widths = np.maximum(1, np.round(width * scale / 1024 * rng.uniform(0.7, 1.3, len(starts))))
    widths = widths.astype(int)
    shades = rng.uniform(-0.12, 0.18, len(starts))
    ridges = lines + 0.25 * widths[:, None, None]
    strokes = zip(
        lines.reshape(len(lines), -1).tolist(),
        ridges.reshape(len(lines), -1).tolist(),
        map(tuple, _rgb(colors).tolist()),
        map(tuple, _rgb(colors + shades[:, None]).tolist()),
        widths.tolist(),
        strict=True,
    )
    for line, ridge, fill, ridge_fill, w in strokes:
        draw.line(line, fill=fill, width=w)
        draw.line(ridge, fill=ridge_fill, width=max(1, w // 3))


def _draw_halos(draw, rng, scale):
    """Concentric broken rings of yellow, white and pale blue around each star."""
    for cx, cy, radius in _STARS:
        width = max(1, round(radius * scale * 0.28))
        for ring in np.linspace(2.6, 1.25, 5):
            r = radius * ring * scale
            box = [cx * scale - r, cy * scale - r, cx * scale + r, cy * scale + r]
            color = _LIGHT[rng.choice(len(_LIGHT), p=_LIGHT_WEIGHTS)]
            start = rng.uniform(0.0, 360.0)
            for arc in range(6):  # six arcs with gaps
                a0 = start + arc * 60.0 + rng.uniform(0, 12)
                fill = tuple(_rgb(color + rng.normal(0, 0.05, 3)).tolist())
                draw.arc(box, a0, a0 + rng.uniform(35, 55), fill=fill, width=width)


def _draw_star_discs(draw, scale):
    for cx, cy, radius in _STARS:
        for r, fill in ((0.8 * radius, (250, 226, 90)), (0.35 * radius, (255, 252, 228))):
            r *= scale
            draw.ellipse(
                [cx * scale - r, cy * scale - r, cx * scale + r, cy * scale + r], fill=fill
            )


def _draw_ridges(draw, rng, scale):
    """Dark broken outlines along the two hill lines."""
    for line in (_horizon, _ridge):
        for x0 in rng.uniform(0.0, 1.0, 90):
            xs = np.linspace(x0, x0 + rng.uniform(0.02, 0.05), 5)
            points = np.stack([xs, line(xs) + rng.normal(0, 0.002)], axis=-1) * scale
            draw.line(points.ravel().tolist(), fill=(14, 22, 52), width=max(1, scale // 200))


def _rgb(color: np.ndarray) -> np.ndarray:
    """RGB in [0, 1], (..., 3) -> 8-bit values, int (..., 3)."""
    return np.round(np.clip(color, 0.0, 1.0) * 255).astype(int)


def example_style(size: int = 512) -> np.ndarray:
    """A swirling night-sky painting, drawn deterministically: (size, size, 3) float32 in [0, 1].

    In the spirit of Van Gogh's *The Starry Night*: thick, short, curved brush
    strokes of ultramarine, cobalt and pale blue follow the streamlines of a few
    large vortices over a deep blue sky; yellow and white stars (and a large moon
    at the top right) sit inside concentric halo strokes; a dark flame-shaped
    cypress rises on the left and rolling blue-green hills fill the bottom.
    Strokes come at three widths, each with a lighter "impasto" ridge.
    """
    if size < 16:
        raise JaxstyleError(f"the example painting needs a size of at least 16, not {size}")
    rng = np.random.default_rng(_SEED)
    scale = 2 * size  # drawn at twice the size, then downsampled (smooths stroke edges)
    y, x = np.mgrid[0:1:256j, 0:1:256j]
    sky = (1 - y[..., None]) * _SKY[0] + y[..., None] * _SKY[3]
    canvas = np.where((y > _horizon(x))[..., None], _NEAR_HILLS[0], sky)
    image = Image.fromarray(np.round(canvas * 255).astype(np.uint8)).resize((scale, scale))
    draw = ImageDraw.Draw(image)
    for count, steps, step, width in ((900, 7, 0.012, 26), (1800, 5, 0.008, 15)):
        _draw_strokes(draw, rng, scale, rng.uniform(-0.03, 1.03, (count, 2)), steps, step, width)
    _draw_halos(draw, rng, scale)
    _draw_strokes(draw, rng, scale, rng.uniform(-0.03, 1.03, (2200, 2)), 4, 0.005, 8)
    _draw_ridges(draw, rng, scale)
    tree = rng.uniform(0.0, 1.0, (6000, 2)) * [0.35, 0.95] + [0.0, 0.08]
    tree = tree[_in_cypress(tree[:, 0], tree[:, 1])][:700]
    _draw_strokes(draw, rng, scale, tree, 5, 0.009, 16)
    _draw_star_discs(draw, scale)
    return np.asarray(image.reduce(2), dtype=np.float32) / 255.0
