"""A live view of a run in the browser: the latest image and the loss curves, served
while the optimisation goes on (crowsonkb/style-transfer-pytorch's web interface).

    with LiveView(port=8000) as view:  # http://127.0.0.1:8000/
        stylize(content, style, callback=view.update, callback_every=10)

Standard library only: an HTTP server on a daemon thread serves the page (``/``), the
latest image (``/image.png``) and the run's state (``/state.json``), which the page
polls once a second. :meth:`LiveView.update` only keeps the image; it is encoded as PNG
in the server's thread when a browser asks for it, at most once per image.
"""

from __future__ import annotations

import http.server
import io
import json
import math
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jaxstyle.errors import JaxstyleError
from jaxstyle.images import check_image, to_uint8
from jaxstyle.inputs import as_image
from jaxstyle.settings import check_every, integer
from jaxstyle.sheets import labelled_grid

POLL_MS = 1000
"""How often the page asks for the run's state."""

THUMBNAIL = 192
"""The longest side of the input images' thumbnails on the page."""


class LiveView:
    """Serves a page showing a run's latest image and loss curves.

    Args:
      host: the address to listen on; "127.0.0.1" (default) is this machine only,
        "0.0.0.0" every interface.
      port: the TCP port; 0 picks a free one (see :attr:`url`).
      title: the page's heading.
      total_steps: the run's steps, for the page's progress (None: unknown).
      inputs: {caption: image file, Pillow image or (H, W, 3) image} shown as thumbnails above
        the run, e.g. {"content": photo, "style": painting}.

    Use it as a context manager (or :meth:`start` and :meth:`close`); pass
    :meth:`update` as ``stylize``'s callback. An address in use is a
    :class:`JaxstyleError`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        title: str = "jaxstyle",
        total_steps: int | None = None,
        inputs: Mapping[str, Any] | None = None,
    ):
        self._lock = threading.Lock()
        self._inputs = [_png(_thumbnail(image)) for image in (inputs or {}).values()]
        self._state: dict[str, Any] = {
            "title": title,
            "total_steps": _total_steps(total_steps),
            "steps": [],
            "times": [],
            "losses": {},
            "image": 0,
            "shape": None,
            "finished": False,
            "inputs": list(inputs or {}),
        }
        self._started = time.monotonic()
        self._pixels: np.ndarray | None = None
        self._png: tuple[int, bytes] = (0, b"")
        server = _Server
        if ":" in host:  # an IPv6 address
            server = type("IPv6Server", (server,), {"address_family": socket.AF_INET6})
        try:
            self._server = server((host, port), _handler(self))
        except (OSError, OverflowError) as err:
            reason = getattr(err, "strerror", None) or err
            raise JaxstyleError(f"cannot serve the live view on {host}:{port}: {reason}") from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:8000/``; listening on every
        interface (0.0.0.0 or ::), the machine's host name."""
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET or AF_INET6 server's: (host, port, ...)
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> LiveView:
        """Serve on a daemon thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="jaxstyle-live-view", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def set_total_steps(self, total_steps: int | None) -> None:
        """The run's steps, for the page's progress, once known (None: unknown)."""
        total_steps = _total_steps(total_steps)
        with self._lock:
            self._state["total_steps"] = total_steps

    def update(self, step: int, losses: Mapping[str, float], image) -> None:
        """Show step ``step``'s ``losses`` ({term: value}) and (H, W, 3) ``image``
        (floats in [0, 1], or uint8): ``stylize``'s callback signature (a sweep's
        or batch's images: :meth:`sweep_callback`, :meth:`batch_callback`)."""
        check_image(image, "LiveView.update's image")
        values = _loss_values(step, losses)
        pixels = np.asarray(image)
        pixels = pixels.copy() if pixels.dtype == np.uint8 else to_uint8(pixels)
        with self._lock:
            state = self._state
            if state["steps"] and state["steps"][-1] == step:  # e.g. finish's last step
                state["steps"].pop()
                state["times"].pop()
                for series in state["losses"].values():
                    series.pop()
            state["steps"].append(int(step))
            state["times"].append(time.monotonic() - self._started)
            for term, value in values.items():
                series = state["losses"].setdefault(term, [None] * (len(state["steps"]) - 1))
                series.append(value)
            for series in state["losses"].values():  # a term this step lacks
                series.extend([None] * (len(state["steps"]) - len(series)))
            state["image"] += 1
            state["shape"] = list(pixels.shape[:2])
            self._pixels = pixels

    def finish(
        self, step: int | None = None, losses: Mapping[str, float] | None = None, image=None
    ) -> None:
        """Mark the run finished (the page stops polling), after an :meth:`update`
        with its result if given."""
        if step is not None:
            self.update(step, losses or {}, image)
        with self._lock:
            self._state["finished"] = True

    def sweep_callback(self, cells: list[dict], axes: dict) -> Callable:
        """A sweep callback (``plan.run(callback=...)``, with the ``cells`` and
        ``axes`` of ``plan = jaxstyle.plan_sweep(...)``) showing the cells'
        labelled contact sheet and the best and worst cell's total loss, given their
        losses {term: (N,)} and (N, H, W, 3) images; called with ``finished=True`` it
        also marks the run finished (:meth:`finish`)."""

        def show(step, losses, images, *, finished=False):
            from jaxstyle.sweep_output import contact_sheet

            _check_cells("sweep_callback", losses, images, len(cells))
            sheet = contact_sheet(images, cells, axes)
            (self.finish if finished else self.update)(step, _best_and_worst(losses), sheet)

        return show

    def batch_callback(self) -> Callable:
        """A batch callback (``batch(callback=...)``) showing the running chunk's
        (n, H, W, 3) images, labelled by their n output files, and its best and
        worst total loss (of losses {term: (n,)})."""

        def show(step, losses, images, outputs):
            _check_cells("batch_callback", losses, images, len(outputs))
            sheet = labelled_grid(images, [""], [Path(path).name for path in outputs])
            self.update(step, _best_and_worst(losses), sheet)

        return show

    def state(self) -> dict:
        """What ``/state.json`` serves: title, total_steps, steps (the updates' step
        numbers), times (their seconds since the view was made), losses ({term: one
        value per update, None if not finite}), image (how many images were shown),
        shape ([H, W] of the latest), finished and inputs (the captions of the
        thumbnails at ``/input/<i>.png``)."""
        with self._lock:
            return json.loads(json.dumps(self._state))

    def png(self) -> bytes | None:
        """The latest image as PNG (None before the first update)."""
        with self._lock:
            version, pixels = self._state["image"], self._pixels
            if self._png[0] == version or pixels is None:  # None: no image yet (version 0)
                return self._png[1] or None
        encoded = _png(pixels)
        with self._lock:
            self._png = (version, encoded)
        return encoded

    def input_png(self, index: int) -> bytes | None:
        """The thumbnail of the ``index``-th input (None if there is none)."""
        return self._inputs[index] if 0 <= index < len(self._inputs) else None


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _thumbnail(image) -> np.ndarray:
    """An image file, a Pillow image, or an (H, W, 3) image in [0, 1] (or uint8), as
    uint8 with its longest side at most :data:`THUMBNAIL`."""
    named = isinstance(image, (str, os.PathLike, Image.Image))  # read as a run reads them
    pixels = as_image(image) if named else np.asarray(image)
    picture = Image.fromarray(pixels if pixels.dtype == np.uint8 else to_uint8(pixels))
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(picture)


def _check_cells(what: str, losses: Any, images: Any, n: int) -> None:
    """Refuse a sweep's or batch's callback arguments unless ``losses`` have a total
    of shape (n,) (one per cell or job) and ``images`` are (n, H, W, 3); a single
    run's numbers and (H, W, 3) image are :meth:`LiveView.update`'s."""
    try:
        total = np.shape(losses["total"])
    except (TypeError, KeyError, IndexError, ValueError):  # not a mapping, or no total
        total = None
    try:
        shape = np.shape(images)
    except ValueError:  # images of several shapes
        shape = None
    if total != (n,) or shape is None or len(shape) != 4 or (shape[0], shape[3]) != (n, 3):
        got = "losses without a total" if total is None else f"a total of shape {total}"
        raise JaxstyleError(
            f"LiveView.{what}'s callback takes losses {{term: ({n},)}} with a total and "
            f"({n}, H, W, 3) images, not {got} and images of shape {shape} "
            "(one run's: LiveView.update)"
        )


def _best_and_worst(losses: Mapping) -> dict[str, float]:
    """The least and greatest total loss of the cells that have one (not NaN: a cell
    of a sweep's later run of cells, not started yet)."""
    totals = np.ravel(np.asarray(losses["total"], np.float64))
    totals = totals[~np.isnan(totals)]
    if not totals.size:
        return {}
    return {"best total": float(totals.min()), "worst total": float(totals.max())}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A browser that went away mid-answer (a closed tab, a reload) is not an
        error to print over the run's progress; anything else is reported as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _total_steps(total_steps) -> int | None:
    """``total_steps`` as a JSON-able int, refused unless an integer >= 0 or None."""
    return None if total_steps is None else check_every("total steps", total_steps)


def _loss_values(step, losses) -> dict[str, float | None]:
    """One update's {term: JSON number}, refused unless ``step`` is an integer and
    ``losses`` maps terms to numbers (not a sweep's or batch's arrays of them)."""
    integer("LiveView.update's step", step)
    try:
        return {str(term): _json_number(value) for term, value in dict(losses).items()}
    except (TypeError, ValueError):
        raise JaxstyleError(
            "LiveView.update takes {term: number} losses (a sweep's or batch's: "
            "sweep_callback, batch_callback)"
        ) from None


def _json_number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def parse_address(text: str) -> tuple[str, int]:
    """``"8000"`` -> ("127.0.0.1", 8000); ``"0.0.0.0:8000"``; ``"[::1]:8000"``."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise JaxstyleError(f"expected [HOST:]PORT with a port 0-65535, got {text!r}")
    return host, number


def _input(view: LiveView, path: str) -> bytes | None:
    """``/input/<i>.png``'s thumbnail, else None."""
    name = path.removeprefix("/input/").removesuffix(".png")
    if path.startswith("/input/") and path.endswith(".png") and name.isdigit():
        return view.input_png(int(name))
    return None


def _handler(view: LiveView) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self._send(PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/state.json":
                self._send(json.dumps(view.state()).encode(), "application/json")
            elif path == "/image.png" and (png := view.png()) is not None:
                self._send(png, "image/png")
            elif (png := _input(view, path)) is not None:
                self._send(png, "image/png")
            else:
                self.send_error(404)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # no line per request on stderr
            pass

    return Handler


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jaxstyle</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa }
main { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start }
img { width: min(100%, 640px); height: auto; box-shadow: 0 1px 4px #0004 }
canvas { background: #fff; border: 1px solid #ccc }
#inputs { display: flex; gap: 1em }
figure { margin: 0; font-size: 0.9em; color: #555 }
figure img { height: 112px; width: auto; box-shadow: none; display: block }
td { padding: 0 1em 0 0; font-variant-numeric: tabular-nums }
</style></head>
<body>
<h1 id="title">jaxstyle</h1>
<div id="inputs"></div>
<p id="status">waiting for the first step (compiling)</p>
<main>
  <img id="image" alt="the image being optimised">
  <div><canvas id="plot" width="520" height="320"></canvas><table id="losses"></table></div>
</main>
<script>
const COLORS = {
  total: "#222", content: "#1f77b4", style: "#d62728", tv: "#2ca02c",
  "best total": "#2ca02c", "worst total": "#d62728",
};
let shown = 0;

function plot(s) {
  const canvas = document.getElementById("plot"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 60, B = 24;
  g.clearRect(0, 0, W, H);
  const values = Object.values(s.losses).flat().filter(v => v > 0);
  if (!values.length) return;
  const lo = Math.log10(Math.min(...values)), hi = Math.log10(Math.max(...values)) + 1e-6;
  const last = Math.max(s.total_steps || 0, ...s.steps, 1);
  const x = step => L + (W - L - 10) * step / last;
  const y = v => 10 + (H - B - 10) * (hi - Math.log10(v)) / (hi - lo);
  g.font = "12px system-ui"; g.fillStyle = "#555";
  g.fillText(Number(10 ** hi).toPrecision(2), 2, 16);
  g.fillText(Number(10 ** lo).toPrecision(2), 2, H - B);
  g.fillText("step " + last, W - 70, H - 6); g.fillText("0", L, H - 6);
  for (const [term, series] of Object.entries(s.losses)) {
    g.strokeStyle = g.fillStyle = COLORS[term] || "#888"; g.beginPath();
    let drawing = false;
    series.forEach((v, i) => {
      if (!(v > 0)) { drawing = false; return; }
      drawing ? g.lineTo(x(s.steps[i]), y(v)) : g.moveTo(x(s.steps[i]), y(v));
      drawing = true;
    });
    g.stroke();
  }
}

function show(s) {
  document.title = s.title; document.getElementById("title").textContent = s.title;
  const inputs = document.getElementById("inputs");
  if (!inputs.children.length) inputs.innerHTML = s.inputs.map((caption, i) =>
    "<figure><img src='input/" + i + ".png' alt=''><figcaption></figcaption></figure>").join("");
  s.inputs.forEach((caption, i) => inputs.children[i].lastChild.textContent = caption);
  const step = s.steps.length ? s.steps[s.steps.length - 1] : 0;
  const of = s.total_steps ? " of " + s.total_steps : "";
  const size = s.shape ? ", " + s.shape[1] + "x" + s.shape[0] : "";
  const n = s.steps.length, rate = n > 1 && !s.finished ?
    ", " + ((s.steps[n - 1] - s.steps[n - 2]) / (s.times[n - 1] - s.times[n - 2])).toFixed(1) +
    " steps/s" : "";
  document.getElementById("status").textContent =
    (s.finished ? "finished: " : s.steps.length ? "running: " : "compiling: ") +
    "step " + step + of + size + rate;
  if (s.image !== shown) {
    document.getElementById("image").src = "image.png?v=" + s.image;
    shown = s.image;
  }
  document.getElementById("losses").innerHTML = Object.entries(s.losses).map(
    ([term, series]) => "<tr><td style='color:" + (COLORS[term] || "#888") + "'>" + term +
      "</td><td>" +
      (series[series.length - 1] ?? NaN).toPrecision(4) + "</td></tr>").join("");
  plot(s);
}

async function poll() {
  try {
    const s = await (await fetch("state.json", {cache: "no-store"})).json();
    show(s);
    if (s.finished) return;
  } catch (err) {
    document.getElementById("status").textContent += " (the run has ended)";
    return;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script></body></html>
""".replace("POLL_MS", str(POLL_MS))
