"""The live view: its page, state and image over HTTP, fed by stylize and the CLI."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main
from jaxstyle.errors import JaxstyleError
from jaxstyle.images import to_uint8
from jaxstyle.live_view import LiveView, parse_address

SMALL = ["--size", "64", "--steps", "3", "--optimizer", "adam", "-q"]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def state(view: LiveView) -> dict:
    return json.loads(get(view.url + "state.json"))


def test_serves_the_page_the_state_and_the_latest_image():
    rng = np.random.default_rng(0)
    first, second = rng.random((20, 30, 3)), rng.random((24, 16, 3))
    with LiveView(title="a run", total_steps=10) as view:
        assert view.url.startswith("http://127.0.0.1:")
        page = get(view.url).decode()
        assert "state.json" in page and "image.png" in page and "<canvas" in page
        assert state(view)["steps"] == [] and state(view)["title"] == "a run"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(view.url + "image.png")  # nothing to show yet
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(view.url + "elsewhere")

        view.update(5, {"total": 3.0, "style": float("nan")}, first)
        view.update(10, {"total": 2.0, "content": 1.0}, first)
        s = state(view)
        assert s["steps"] == [5, 10] and s["total_steps"] == 10 and s["shape"] == [20, 30]
        # a term missing from an update, or not finite, is null (valid JSON)
        assert s["losses"] == {"total": [3.0, 2.0], "style": [None, None], "content": [None, 1.0]}
        assert len(s["times"]) == 2 and 0 <= s["times"][0] <= s["times"][1]
        assert s["image"] == 2 and not s["finished"]
        png = Image.open(io.BytesIO(get(view.url + "image.png?v=2")))
        np.testing.assert_array_equal(np.asarray(png), np.rint(first * 255).astype(np.uint8))

        view.finish(10, {"total": 1.5, "content": 0.5}, second)  # replaces step 10
        s = state(view)
        assert s["steps"] == [5, 10]
        assert s["losses"]["total"] == [3.0, 1.5] and s["finished"] and s["shape"] == [24, 16]
        png = Image.open(io.BytesIO(get(view.url + "image.png")))
        np.testing.assert_array_equal(np.asarray(png), np.rint(second * 255).astype(np.uint8))
    with pytest.raises(urllib.error.URLError):
        get(view.url)  # closed: the port is free again


def test_every_interface_is_named_by_the_host_name():
    with LiveView("0.0.0.0") as view:
        assert view.url.startswith(f"http://{socket.gethostname()}:")
        port = view.url.rstrip("/").rsplit(":", 1)[1]
        assert json.loads(get(f"http://127.0.0.1:{port}/state.json"))["steps"] == []


def test_input_thumbnails_from_arrays_and_files(shared_image):
    photo = np.random.default_rng(2).random((300, 400, 3))
    with LiveView(inputs={"content": photo, "style": shared_image("the_scream.jpg")}) as view:
        assert state(view)["inputs"] == ["content", "style"]
        content = np.asarray(Image.open(io.BytesIO(get(view.url + "input/0.png"))))
        style = Image.open(io.BytesIO(get(view.url + "input/1.png")))
        assert content.shape == (144, 192, 3) and max(style.size) == 192
        for missing in ("input/2.png", "input/x.png", "input/-1.png"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                get(view.url + missing)


def test_input_thumbnails_from_pillow_images():
    palette = Image.new("RGB", (40, 20), (255, 0, 0)).convert("P")  # read as its file is
    with LiveView(inputs={"content": palette}) as view:
        thumbnail = Image.open(io.BytesIO(get(view.url + "input/0.png")))
        assert thumbnail.mode == "RGB" and thumbnail.getpixel((5, 5)) == (255, 0, 0)


def test_a_browser_gone_mid_answer_prints_nothing(capsys):
    with LiveView() as view:
        for error in (BrokenPipeError(), ConnectionResetError()):
            try:
                raise error
            except ConnectionError:
                view._server.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a bug")
        except ValueError:
            view._server.handle_error(None, ("127.0.0.1", 1))
        assert "ValueError: a bug" in capsys.readouterr().err


def test_an_address_in_use_is_a_one_line_error():
    with LiveView() as view:
        port = int(view.url.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(jaxstyle.JaxstyleError, match=r"127.0.0.1:\d+: .*in use") as err:
            LiveView(port=port)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, address",
    [("8000", ("127.0.0.1", 8000)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:0", ("::1", 0))],
)
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "x", "host:", "70000", "-1", "1.5"])
def test_parse_address_refuses(text):
    with pytest.raises(jaxstyle.JaxstyleError, match="PORT"):
        parse_address(text)


def test_stylize_shows_its_steps_and_images(shared_image, vgg_weights):
    content = jaxstyle.load_image(shared_image("tubingen.jpg"))
    style = jaxstyle.load_image(shared_image("starry_night.jpg"))
    with LiveView() as view:
        result = jaxstyle.stylize(
            content,
            [style],
            weights=vgg_weights,
            size=64,
            steps=4,
            optimizer="adam",
            callback=view.update,
            callback_every=2,
        )
        s = state(view)
        png = np.asarray(Image.open(io.BytesIO(get(view.url + "image.png"))))
    assert s["steps"] == [2, 4] and set(s["losses"]) >= {"total", "content", "style", "tv"}
    np.testing.assert_allclose(s["losses"]["total"][-1], result.history["total"][-1], rtol=1e-6)
    np.testing.assert_array_equal(png, to_uint8(result.image))


def test_cli_live_serves_while_it_runs(shared_image, tmp_path, capsys, monkeypatch):
    seen, update = [], LiveView.update

    def update_and_ask(view, step, losses, image):  # the server answers mid-run
        update(view, step, losses, image)
        seen.append((step, state(view)["steps"][-1], image.shape[:2]))

    closed = []
    monkeypatch.setattr(LiveView, "update", update_and_ask)
    monkeypatch.setattr(
        LiveView,
        "close",
        lambda view, close=LiveView.close: (closed.append(view.state()), close(view)),
    )
    out = tmp_path / "out.png"
    args = [shared_image("tubingen.jpg"), shared_image("starry_night.jpg"), "-o", out, *SMALL]
    args += ["--coarse-to-fine", "32", "--coarse-to-fine-steps", "4", "--save-every", "2"]
    assert main(["stylize", *map(str, args), "--live", "127.0.0.1:0", "--live-every", "3"]) == 0
    assert "jaxstyle: live view at http://127.0.0.1:" in capsys.readouterr().err
    # every 3rd step of each pass (3; 4+3), then the result; --save-every still every 2nd
    assert seen == [(3, 3, (24, 32)), (7, 7, (48, 64)), (7, 7, (48, 64))]
    assert sorted(p.name for p in tmp_path.glob("out.step*.png")) == [
        "out.step00002.png",
        "out.step00004.png",
        "out.step00006.png",
    ]
    (last,) = closed
    assert last["finished"] and last["steps"] == [3, 7] and last["total_steps"] == 7
    assert last["inputs"] == ["content", "style"]
    record = json.loads(out.with_suffix(".json").read_text())
    assert last["losses"]["total"][-1] == pytest.approx(record["final_losses"]["total"], 1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--live", "nowhere"], "expected [HOST:]PORT"),
        (["--live", "0", "--live-every", "0"], "--live-every must be >= 1"),
        (["--live-every", "5"], "--live-every goes with --live"),
    ],
)
def test_cli_live_bad_input_is_one_line(shared_image, tmp_path, capsys, extra, message):
    args = [
        shared_image("tubingen.jpg"),
        shared_image("starry_night.jpg"),
        "-o",
        tmp_path / "o.png",
    ]
    assert main(["stylize", *map(str, args), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


def test_cli_live_on_a_port_in_use_writes_nothing(shared_image, tmp_path, capsys):
    args = [
        shared_image("tubingen.jpg"),
        shared_image("starry_night.jpg"),
        "-o",
        tmp_path / "o.png",
    ]
    with LiveView() as view:
        address = view.url.removeprefix("http://").rstrip("/")
        assert main(["stylize", *map(str, args), *SMALL, "--live", address]) == 2
    err = capsys.readouterr().err
    assert "cannot serve the live view" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def pair(shared_image):
    return str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))


def test_sweep_callback_every_nth_step_across_checkpoint_segments(pair, vgg_weights, tmp_path):
    """Segments of 3 steps (checkpoints), a callback every 2nd: steps 2, 4 and 6 (the
    second segment starts at 3, so it must report on its own 1st step)."""
    calls = []
    result = jaxstyle.sweep(
        *pair,
        weights=vgg_weights,
        size=64,
        steps=6,
        optimizer="adam",
        style_weight=[1e2, 1e3],
        seed=[0, 1],  # 4 cells: the shape of the other sweep tests
        init="noise",
        checkpoint_dir=tmp_path,
        checkpoint_every=3,
        callback=lambda step, losses, images: calls.append((step, losses, images)),
        callback_every=2,
    )
    assert [step for step, _, _ in calls] == [2, 4, 6]
    for step, losses, images in calls:
        assert images.shape == (4, 48, 64, 3) and losses["total"].shape == (4,)
        np.testing.assert_allclose(losses["total"], result.history["total"][:, step - 1], 1e-6)
    np.testing.assert_array_equal(calls[-1][2], result.images)


def test_batch_callback_per_chunk_with_its_outputs(images_by_name, vgg_weights, tmp_path):
    tubingen, starry, scream = images_by_name
    jobs = [
        jaxstyle.Job(line=1, content=tubingen, styles=(starry,), output="a.png", overrides={}),
        jaxstyle.Job(line=2, content=tubingen, styles=(scream,), output="b.png", overrides={}),
        jaxstyle.Job(
            line=3, content=tubingen, styles=(scream,), output="small.png", overrides={"size": 32}
        ),
    ]
    calls = []
    report = jaxstyle.batch(
        jobs,
        tmp_path,
        weights=vgg_weights,
        size=64,
        steps=3,
        optimizer="adam",
        callback=lambda *call: calls.append(call),
        callback_every=3,
        on_plan=lambda plan: calls.append(plan),
    )
    assert len(report.written) == 3 and not report.failed
    plan = calls.pop(0)  # before any step
    assert plan.written == []
    assert [(b["jobs"], b["steps"]) for b in plan.buckets] == [(2, 3), (1, 3)]
    # steps numbered on over the chunks: the 64 px pair, then the 32 px job
    assert [(step, [p.name for p in outputs]) for step, _, _, outputs in calls] == [
        (3, ["a.png", "b.png"]),
        (6, ["small.png"]),
    ]
    assert calls[0][2].shape == (2, 48, 64, 3) and calls[1][2].shape == (1, 24, 32, 3)
    for _, _, images, outputs in calls:
        for image, output in zip(images, outputs, strict=True):
            np.testing.assert_array_equal(to_uint8(image), np.asarray(Image.open(output)))


@pytest.fixture(scope="module")
def images_by_name(shared_image):
    return tuple(shared_image(f"{n}.jpg") for n in ("tubingen", "starry_night", "the_scream"))


@pytest.fixture
def closed_views(monkeypatch):
    """The state of every LiveView when it closes."""
    states = []
    close = LiveView.close
    monkeypatch.setattr(LiveView, "close", lambda view: (states.append(view.state()), close(view)))
    return states


def test_a_batch_of_images_or_a_bad_total_is_refused_before_the_state_changes():
    """A sweep's (N, H, W, 3) images given to update (sweep_callback shows them) and a
    total that JSON cannot hold are clear errors, and the page keeps serving."""
    with LiveView(total_steps=np.int64(6)) as view:
        assert state(view)["total_steps"] == 6  # numpy's integer stored as an int
        with pytest.raises(JaxstyleError, match=r"LiveView.update's image must be one \(H, W"):
            view.update(1, {"total": 1.0}, np.zeros((4, 8, 8, 3), np.float32))
        per_cell = {"total": np.array([1.0, 2.0])}
        for losses in (per_cell, {"total": "low"}, [1.0]):
            with pytest.raises(JaxstyleError, match=r"LiveView.update takes \{term: number\}"):
                view.update(1, losses, np.zeros((8, 8, 3), np.float32))
        with pytest.raises(JaxstyleError, match="update's step must be an integer, not '1'"):
            view.update("1", {}, np.zeros((8, 8, 3), np.float32))
        refused = {
            -1: ">= 0 steps, not -1",
            2.5: "an integer, not 2.5",
            "6": "an integer, not '6'",
            True: "an integer, not True",
        }
        for bad, needle in refused.items():
            with pytest.raises(JaxstyleError, match=f"^total steps must be {needle}$"):
                view.set_total_steps(bad)
        view.set_total_steps(np.int32(9))
        s = state(view)
        assert s["steps"] == [] and s["image"] == 0 and s["total_steps"] == 9


@pytest.mark.parametrize(
    "run, option",
    [("stylize", "callback"), ("sweep", "callback"), ("batch", "callback"), ("batch", "on_plan")],
)
def test_a_callback_that_is_not_callable_is_refused_before_any_input_is_read(run, option, tmp_path):
    """It failed at its first call (on_plan once the rows were read), else never; here
    the images are missing."""
    inputs = ([], tmp_path) if run == "batch" else ("missing.jpg", "missing.jpg")
    with pytest.raises(JaxstyleError, match=f"{option} must be a function or None, not int"):
        getattr(jaxstyle, run)(*inputs, **{option: 5, "callback_every": 1})


def test_sweep_and_batch_callbacks_refuse_a_single_runs_losses_and_image():
    """A stylize run's number and (H, W, 3) image, or losses without a total, were a
    ValueError of the grid ("48 images do not fill 2x2"), a KeyError, or shown as if
    every cell had that loss."""
    image, images = np.zeros((48, 64, 3)), np.zeros((4, 48, 64, 3))
    cells = [{"content_weight": c, "style_weight": s} for c in (1.0, 5.0) for s in (1e2, 1e3)]
    axes = {"content_weight": [1.0, 5.0], "style_weight": [1e2, 1e3]}
    per_cell = {"total": np.arange(4.0)}
    with LiveView() as view:
        show_sweep, show_batch = view.sweep_callback(cells, axes), view.batch_callback()
        for losses, pictures, got in (
            (per_cell, image, r"a total of shape \(4,\) and images of shape \(48, 64, 3\)"),
            ({"total": 1.0}, images, r"a total of shape \(\) and images of shape \(4, 48"),
            ({"style": np.arange(4.0)}, images, "losses without a total"),
        ):
            expected = r"takes losses \{term: \(4,\)\} with a total and \(4, H, W, 3\) images, not "
            with pytest.raises(JaxstyleError, match="sweep_callback's callback " + expected + got):
                show_sweep(1, losses, pictures)
            with pytest.raises(JaxstyleError, match="batch_callback's callback " + expected + got):
                show_batch(1, losses, pictures, ["a.png", "b.png", "c.png", "d.png"])
        assert state(view)["image"] == 0  # nothing shown


def test_cli_sweep_live_shows_the_contact_sheet(pair, tmp_path, capsys, closed_views):
    out = tmp_path / "grid"
    args = ["--size", "64", "--steps", "3", "--optimizer", "adam", "-q", "--init", "noise"]
    axes = ["--style-weight", "1e2,1e3", "--seed", "0,1"]  # the 4-cell shape: no new compile
    live = ["--live", "127.0.0.1:0", "--live-every", "2"]
    assert main(["sweep", *pair, "-o", str(out), *args, *axes, *live]) == 0
    assert "jaxstyle: live view at http://127.0.0.1:" in capsys.readouterr().err
    (last,) = closed_views
    assert last["steps"] == [2, 3] and last["finished"] and last["total_steps"] == 3
    assert set(last["losses"]) == {"best total", "worst total"}
    record = json.loads((out / "sweep.json").read_text())
    totals = [c["final"]["total"] for c in record["cells"]]
    assert last["losses"]["best total"][-1] == pytest.approx(min(totals), 1e-6)
    assert last["shape"] == list(np.asarray(Image.open(out / "grid.png")).shape[:2])


def test_python_sweep_live_shows_the_contact_sheet_as_the_command_does(pair, vgg_weights):
    """``jaxstyle sweep --live`` from Python, with public names only: the plan's cells
    and axes label the sheet (README: ``plan_sweep``, ``LiveView.sweep_callback``)."""
    plan = jaxstyle.plan_sweep(
        *pair,
        weights=vgg_weights,
        size=64,
        steps=3,
        optimizer="adam",
        init="noise",
        style_weight=[1e2, 1e3],
        seed=[0, 1],  # the 4-cell shape: no new compile
    )
    with jaxstyle.LiveView(port=0, total_steps=3) as view:
        show = view.sweep_callback(plan.cells, plan.axes)
        result = plan.run(callback=show, callback_every=2)
        show(3, result.final, result.images, finished=True)
        s = state(view)
    assert isinstance(result, jaxstyle.SweepResult) and result.images.shape == (4, 48, 64, 3)
    assert s["steps"] == [2, 3] and s["finished"]
    assert s["losses"]["best total"][-1] == pytest.approx(float(np.min(result.final["total"])))
    assert s["shape"][0] > 2 * 48 and s["shape"][1] > 2 * 64  # 2 x 2, with labels


def test_cli_batch_live_shows_each_chunk(images_by_name, tmp_path, capsys, closed_views):
    tubingen, starry, scream = map(str, images_by_name)
    rows = [
        {"content": tubingen, "style": starry, "output": "a.png"},
        {"content": tubingen, "style": scream, "output": "b.png", "size": 32},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["batch", str(manifest), "-o", str(tmp_path / "out"), "--size", "64", "--steps", "3"]
    args += ["--optimizer", "adam", "-q", "--live", "127.0.0.1:0", "--live-every", "3"]
    assert main(args) == 0
    assert "jaxstyle: live view at http://127.0.0.1:" in capsys.readouterr().err
    (last,) = closed_views
    # the total from the plan: 2 chunks (one per shape) of 3 steps
    assert last["steps"] == [3, 6] and last["finished"] and last["total_steps"] == 6


@pytest.mark.parametrize("command", ["sweep", "batch"])
def test_cli_live_does_not_go_with_distributed(pair, tmp_path, capsys, command):
    inputs = [*pair] if command == "sweep" else [str(tmp_path / "jobs.jsonl")]
    args = [command, *inputs, "-o", str(tmp_path / "out"), "--live", "0", "--distributed"]
    assert main(args) == 2
    assert "not go with --distributed" in capsys.readouterr().err


def test_sweep_and_batch_callbacks_show_labelled_sheets():
    images = np.random.default_rng(1).random((4, 12, 16, 3))
    cells = [{"content_weight": c, "style_weight": s} for c in (1.0, 5.0) for s in (1e2, 1e3)]
    axes = {"content_weight": [1.0, 5.0], "style_weight": [1e2, 1e3]}
    losses = {"total": np.array([3.0, 1.0, 4.0, 2.0])}
    with LiveView() as view:
        view.sweep_callback(cells, axes)(2, losses, images)
        s = state(view)
        assert s["losses"] == {"best total": [1.0], "worst total": [4.0]}
        sheet = np.asarray(Image.open(io.BytesIO(get(view.url + "image.png"))))
        assert sheet.shape[0] > 2 * 12 and sheet.shape[1] > 2 * 16  # 2 x 2, with labels
        view.batch_callback()(
            5, {"total": losses["total"][:3]}, images[:3], ["a.png", "b.png", "c"]
        )
        chunk = np.asarray(Image.open(io.BytesIO(get(view.url + "image.png"))))
        assert chunk.shape[1] > 3 * 16 and state(view)["steps"] == [2, 5]
        assert not state(view)["finished"]
        view.sweep_callback(cells, axes)(6, losses, images, finished=True)
        assert state(view)["finished"]
