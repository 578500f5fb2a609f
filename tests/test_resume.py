"""Checkpoints and resumption: stop (SIGTERM/SIGINT or SIGKILL) and rerun = uninterrupted.

Tolerance: a resumed run replays the same compiled step from the saved carry,
so images and losses must agree to float32 rounding (images atol 1e-6 in
[0, 1], losses rtol 1e-6); on XLA:CPU they are observed bit-identical.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cells
from jaxstyle.checkpoint import load_tree, save_tree
from jaxstyle.cli import main
from jaxstyle.images import to_uint8
from jaxstyle.resume import CHECKPOINTS, STEP, Checkpointing

SWEEP = dict(size=32, optimizer="lbfgs", style_weight=[1e1, 1e2, 1e4])  # test_sweep's shape


@pytest.fixture(scope="module")
def pair(shared_image):
    return str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))


def test_checkpointing_keeps_the_newest_and_refuses_another_run(tmp_path):
    run = Checkpointing(tmp_path / "ck", {"cells": [1, 2]}, every=2)
    assert run.load() is None
    run.save(2, {"x": np.arange(3.0)})
    run.save(4, {"x": np.arange(3.0) + 4})
    assert sorted(p.name for p in run.directory.iterdir()) == ["run.json", "step_00000004"]
    np.testing.assert_array_equal(run.load()["x"], np.arange(3.0) + 4)
    (run.directory / "step_00000006.orbax-checkpoint-tmp-1").mkdir()  # a save cut short
    np.testing.assert_array_equal(run.load()["x"], np.arange(3.0) + 4)
    other = Checkpointing(tmp_path / "ck", {"cells": [1, 3], "start": 1})
    with pytest.raises(
        jaxstyle.JaxstyleError,
        match=r"other settings \(differing: cells' weights, style scales, blends or seeds, "
        r"starting images\);",
    ):
        other.load()
    with pytest.raises(jaxstyle.JaxstyleError, match="every"):
        Checkpointing(tmp_path / "x", {}, every=-1)
    run.clear()
    assert not run.directory.exists()


def test_a_checkpoint_of_other_settings_names_the_settings_that_differ(tmp_path):
    """Not just "differing: settings": the user must know which option to give back."""
    settings = {"steps": 5, "learning_rate": 1.0, "size": 32}
    Checkpointing(tmp_path / "ck", {"settings": settings, "content": "a"}).save(1, {"x": 1})
    other = {"settings": {**settings, "steps": 6, "learning_rate": 2.0}, "content": "b"}
    with pytest.raises(jaxstyle.JaxstyleError) as err:
        Checkpointing(tmp_path / "ck", other).load()
    assert "(differing: content, settings (learning_rate, steps)); rerun with" in str(err.value)


def test_a_second_run_into_a_held_checkpoint_is_refused(vgg_weights, pair, tmp_path):
    """The same command started twice into one output: the second is refused in one line
    (it used to save into the first's checkpoints: "Destination ... already exists", or
    a step the other was deleting "unreadable"); a save cut short by SIGKILL is removed
    once the directory is held (Orbax warned of it on the resumed run)."""
    ck = Checkpointing(tmp_path / "ck", {"cells": [1]})
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "step_00000006.orbax-checkpoint-tmp-1").mkdir()  # SIGKILLed mid-save
    with ck.held():
        assert not (tmp_path / "ck" / "step_00000006.orbax-checkpoint-tmp-1").exists()
        with pytest.raises(jaxstyle.JaxstyleError) as err:
            jaxstyle.sweep(
                *pair, weights=vgg_weights, steps=1, checkpoint_dir=ck.directory, **SWEEP
            )
        assert str(err.value) == (
            f"checkpoint {ck.directory} is in use by another jaxstyle run; wait for it to end "
            "(or stop it), or give another output"
        )
    with ck.held():  # released with the block
        pass


def test_a_damaged_checkpoint_or_a_failed_save_is_a_one_line_error(tmp_path, monkeypatch):
    from orbax.checkpoint import v1 as ocp

    run = Checkpointing(tmp_path / "ck", {"cells": [1]})
    run.save(1, {"x": np.arange(3.0)})
    step = run.directory / "step_00000001"
    spare = tmp_path / "spare"
    shutil.copytree(step, spare)
    shutil.rmtree(step / "state" / "d")  # a partial copy
    with pytest.raises(jaxstyle.JaxstyleError) as err:
        run.load()
    message = str(err.value)
    assert message.startswith(f"checkpoint {step} is unreadable (NOT_FOUND: ")
    assert message.endswith(f"; delete {run.directory} to start over")
    reason = message.split(" is unreadable (")[1].rsplit("); delete", 1)[0]
    assert "\n" not in message and len(reason) <= 200
    shutil.rmtree(step)
    shutil.copytree(spare, step)
    (step / "_CHECKPOINT_METADATA").unlink()
    with pytest.raises(jaxstyle.JaxstyleError, match=r"unreadable \(Could not recognize"):
        run.load()

    def full(path, tree):  # as Orbax fails on a full disk, its temporary directory left
        tmp = path.parent / f"{path.name}.orbax-checkpoint-tmp"
        (tmp / "state").mkdir(parents=True)
        raise ValueError(
            f'RESOURCE_EXHAUSTED: Error writing "x/c/0" in OCDBT database at local file "{tmp}/'
            f'state/": Failed writing: "{tmp}/state/d/da313dfde2732170": Failed to write 325 '
            "bytes to file 17: No space left on device [os_error_code='28']"
        )

    monkeypatch.setattr(ocp, "save", full)
    with pytest.raises(jaxstyle.JaxstyleError) as err:
        run.save(2, {"x": np.arange(3.0)})
    assert str(err.value) == (
        f"cannot save a checkpoint in {run.directory}: RESOURCE_EXHAUSTED: ...: "
        "No space left on device; the checkpoint of step 1 is kept: fix that, then rerun the "
        "same command to resume from it"
    )
    assert sorted(p.name for p in run.directory.iterdir()) == ["run.json", "step_00000001"]


def test_sweep_stopped_by_sigterm_resumes_to_the_uninterrupted_result(
    vgg_weights, pair, tmp_path, monkeypatch, sigterm_after
):
    whole = jaxstyle.sweep(*pair, weights=vgg_weights, steps=5, **SWEEP)
    ck = tmp_path / "ck"
    with monkeypatch.context() as m:
        m.setattr(cells, "stop_requests", lambda: sigterm_after(1, signal.SIGINT))
        with pytest.raises(jaxstyle.JaxstyleError, match="^interrupted at step 1 of 5") as err:
            jaxstyle.sweep(*pair, weights=vgg_weights, steps=5, checkpoint_dir=ck, **SWEEP)
        assert err.value.exit_code == 128 + signal.SIGINT
        shutil.rmtree(ck)
        m.setattr(cells, "stop_requests", lambda: sigterm_after(4))
        stopped = r"terminated \(SIGTERM\) at step 3 of 5"
        with pytest.raises(jaxstyle.JaxstyleError, match=stopped) as err:
            jaxstyle.sweep(
                *pair, weights=vgg_weights, steps=5, checkpoint_dir=ck, checkpoint_every=2, **SWEEP
            )
    assert err.value.exit_code == 128 + signal.SIGTERM
    assert sorted(p.name for p in ck.iterdir()) == ["run.json", "step_00000003"]
    with pytest.raises(
        jaxstyle.JaxstyleError, match="differing: cells' weights, style scales, blends or seeds"
    ):
        jaxstyle.sweep(
            *pair, weights=vgg_weights, steps=5, checkpoint_dir=ck, **{**SWEEP, "style_weight": 1}
        )
    # An optimiser state of another form (one leaf fewer, as from an older jaxstyle).
    old = tmp_path / "old"
    shutil.copytree(ck, old)
    saved = load_tree(old / "step_00000003")
    del saved["carry"][max(saved["carry"])]
    shutil.rmtree(old / "step_00000003")
    save_tree(old / "step_00000003", saved)
    with pytest.raises(jaxstyle.JaxstyleError, match="optimiser state of another form"):
        jaxstyle.sweep(*pair, weights=vgg_weights, steps=5, checkpoint_dir=old, **SWEEP)
    resumed = jaxstyle.sweep(*pair, weights=vgg_weights, steps=5, checkpoint_dir=ck, **SWEEP)
    assert resumed.resumed_from == 3
    np.testing.assert_allclose(resumed.images, whole.images, rtol=0, atol=1e-6)
    for name in whole.final:
        np.testing.assert_allclose(resumed.final[name], whole.final[name], rtol=1e-6)
        np.testing.assert_allclose(resumed.history[name], whole.history[name], rtol=1e-6)


def test_a_second_ctrl_c_says_the_checkpoint_is_kept(vgg_weights, pair, tmp_path, monkeypatch):
    """Ctrl-C twice stops at once, without a save: the message (was only "interrupted")
    says that the last periodic checkpoint is kept and how to resume from it."""
    ck = tmp_path / "ck"

    @contextlib.contextmanager
    def ctrl_c_twice():
        polls = [0]

        def stopped():
            polls[0] += 1
            if polls[0] == 4:  # after the checkpoint of step 2
                raise KeyboardInterrupt
            return 0

        yield stopped

    monkeypatch.setattr(cells, "stop_requests", ctrl_c_twice)
    err: BaseException | None = None
    try:  # a bare KeyboardInterrupt would stop pytest: caught, to fail this test alone
        jaxstyle.sweep(
            *pair, weights=vgg_weights, steps=5, checkpoint_dir=ck, checkpoint_every=2, **SWEEP
        )
    except (jaxstyle.Interrupted, KeyboardInterrupt) as stopped:
        err = stopped
    assert isinstance(err, jaxstyle.Interrupted), repr(err)
    assert str(err) == (
        f"interrupted at once; the checkpoint of step 2 in {ck} is kept: rerun the same "
        "command to resume"
    )
    assert err.exit_code == 128 + signal.SIGINT


def _wait_for_checkpoint(proc, directory, after: int, timeout: float = 300) -> int:
    """Wait until ``directory`` holds a checkpoint past step ``after``; returns its step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        steps = sorted(p.name for p in directory.glob("step_*") if "tmp" not in p.name)
        if steps and int(steps[-1][5:]) > after:
            return int(steps[-1][5:])
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no checkpoint past step {after} in {timeout} s")


def test_cli_sweep_survives_sigterm_and_sigkill(vgg_weights, pair, tmp_path, capsys):
    """SIGTERM: checkpoint, exit 143, clear message. SIGKILL midway: the periodic
    checkpoint. The rerun after both completes, equal to an uninterrupted run, and
    says the step it resumed at."""
    steps = 8
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "jaxstyle", "sweep", *pair, "-o", str(out), "-q"]
    command += ["--size", "32", "--steps", str(steps), "--optimizer", "lbfgs"]
    command += ["--style-weight", "1e1,1e2,1e4", "--checkpoint-every", "1"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    ck = out / CHECKPOINTS

    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(proc, ck, after=0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "terminated (SIGTERM) at step" in err and "rerun the same command to resume" in err
    stopped_at = int(sorted(p.name for p in ck.glob("step_*"))[-1][5:])
    assert 0 < stopped_at < steps

    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    killed_after = _wait_for_checkpoint(proc, ck, after=stopped_at)
    proc.kill()  # SIGKILL: no chance to save
    proc.wait(timeout=60)
    assert killed_after < steps and not (out / "sweep.json").exists()

    saved = max(int(m[1]) for p in ck.iterdir() if (m := STEP.match(p.name)))
    shutil.copytree(ck, tmp_path / "spare")
    capsys.readouterr()
    assert main(command[3:]) == 0
    assert f"device(s), resumed at step {saved})" in capsys.readouterr().out
    assert not ck.exists()
    whole = jaxstyle.sweep(*pair, weights=vgg_weights, steps=steps, **SWEEP)
    record = json.loads((out / "sweep.json").read_text())
    for i, cell in enumerate(record["cells"]):
        for name, value in cell["final"].items():
            assert value == pytest.approx(float(whole.final[name][i]), rel=1e-6)
        png = np.asarray(Image.open(out / cell["file"]))
        np.testing.assert_array_equal(png, to_uint8(whole.images[i]))

    mtime = (out / "sweep.json").stat().st_mtime_ns
    shutil.copytree(tmp_path / "spare", ck)  # as if SIGKILLed between the outputs and the clear
    assert main(command[3:]) == 0  # finished: nothing recomputed or rewritten
    assert (out / "sweep.json").stat().st_mtime_ns == mtime
    assert not ck.exists()  # the checkpoint left behind is removed
    assert main([*command[3:-4], "--style-weight", "1,2", "--checkpoint-every", "1"]) == 2


STYLIZE = dict(size=32, optimizer="adam", steps=5)  # Adam: one-cell sweep == plain to 1e-5


def test_stylize_with_a_checkpoint_dir_resumes_to_the_plain_result(
    vgg_weights, pair, tmp_path, monkeypatch, sigterm_after
):
    """``stylize(checkpoint_dir=...)`` runs as a one-cell sweep: stopped by SIGTERM it
    saves, the rerun resumes, and the result equals a plain ``stylize`` (Adam:
    images atol 1e-5, losses rtol 1e-4, as a sweep cell equals its single run);
    its callback gets stylize's floats and (H, W, 3) image."""
    plain = jaxstyle.stylize(*pair, weights=vgg_weights, **STYLIZE)
    ck = tmp_path / "ck"
    with monkeypatch.context() as m:
        m.setattr(cells, "stop_requests", lambda: sigterm_after(4))
        with pytest.raises(jaxstyle.JaxstyleError, match=r"terminated \(SIGTERM\) at step 2 of 5"):
            jaxstyle.stylize(
                *pair, weights=vgg_weights, checkpoint_dir=ck, checkpoint_every=1, **STYLIZE
            )
    with pytest.raises(
        jaxstyle.JaxstyleError, match="differing: cells' weights, style scales, blends or seeds"
    ):
        jaxstyle.stylize(*pair, weights=vgg_weights, checkpoint_dir=ck, style_weight=1, **STYLIZE)
    calls = []
    resumed = jaxstyle.stylize(
        *pair,
        weights=vgg_weights,
        checkpoint_dir=ck,
        callback=lambda step, losses, image: calls.append((step, losses, image.shape)),
        callback_every=1,
        **STYLIZE,
    )
    assert resumed.resumed_from == 2 and resumed.settings == plain.settings
    steps = [(step, type(losses["total"])) for step, losses, _ in calls]
    assert steps == [(3, float), (4, float), (5, float)]
    assert calls[-1][2] == plain.image.shape
    np.testing.assert_allclose(resumed.image, plain.image, rtol=0, atol=1e-5)
    assert list(resumed.final) == list(plain.final)
    for name in plain.final:
        np.testing.assert_allclose(resumed.final[name], plain.final[name], rtol=1e-4)
        np.testing.assert_allclose(resumed.history[name], plain.history[name], rtol=1e-4)


def test_cli_stylize_checkpoint_every_survives_sigterm(vgg_weights, pair, tmp_path):
    """``stylize --checkpoint-every``: SIGTERM saves and exits 143; a rerun with other
    settings is refused, touching nothing; the same command (even without the flag)
    resumes, writes the plain run's image and removes the checkpoint."""
    out = tmp_path / "o.png"
    ck = tmp_path / ".o.png.jaxstyle-checkpoint"
    steps = 400
    command = [sys.executable, "-m", "jaxstyle", "stylize", *pair, "-o", str(out), "-q"]
    command += ["--size", "32", "--optimizer", "adam", "--steps", str(steps)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [*command, "--checkpoint-every", "5"], env=env, stderr=subprocess.PIPE, text=True
    )
    _wait_for_checkpoint(proc, ck, after=0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "jaxstyle: terminated (SIGTERM) at step" in err  # as without --checkpoint-every
    assert f"saved a checkpoint in {ck}: rerun the same command to resume" in err
    stopped_at = int(sorted(p.name for p in ck.glob("step_*"))[-1][5:])
    assert 0 < stopped_at < steps and not out.exists()

    before = sorted(p.name for p in ck.iterdir())
    assert main([*command[3:], "--style-weight", "7"]) == 2
    assert sorted(p.name for p in ck.iterdir()) == before and not out.exists()
    assert main(command[3:]) == 0
    assert not ck.exists()
    record = json.loads(out.with_suffix(".json").read_text())
    plain = jaxstyle.stylize(*pair, weights=vgg_weights, **{**STYLIZE, "steps": steps})
    png = np.asarray(Image.open(out)).astype(np.int16)
    assert np.abs(png - to_uint8(plain.image)).max() <= 1  # the 1e-5 of the API test, rounded
    assert record["final_losses"]["total"] == pytest.approx(plain.final["total"], rel=1e-4)
    assert main([*command[3:], "--checkpoint-every", "-1"]) == 2
