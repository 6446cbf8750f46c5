"""Fitting the tools people use: TensorBoard event files, config files (--config /
--print-config), ONNX export checked with onnxruntime, and the quick-start notebook executed."""

from __future__ import annotations

import copy
import json
import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_optional, run_cli, tiny_cdcgan_run
from mnistgan.cli import main
from mnistgan.config import RunConfig, load_preset, preset_names
from mnistgan.config_file import read_config_file, to_toml

ROOT = Path(__file__).resolve().parents[1]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI; (exit status, stdout, stderr)."""
    return run_cli(capsys, *args)

def train(fake_dir: Path, *args: str) -> None:
    preset = [] if "--preset" in args or "--config" in args else ["--preset", "seed"]
    main(["train", *preset, "--dataset", "idx", "--data-dir", str(fake_dir), *args])


# -- TensorBoard -------------------------------------------------------------------------------


def events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def scalar_steps(acc, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def test_tensorboard_scalars_and_grids_match_the_log_and_survive_resume(fake_dir, tmp_path):
    run = tmp_path / "run"
    # 96 fake images / batch 16 = 6 steps an epoch; one epoch, then a resume to two.
    train(fake_dir, "--out", str(run), "--epochs", "1", "--batch-size", "16", "--log-every", "2",
          "--tensorboard")
    main(["train", "--resume", str(run), "--epochs", "2"])  # no flag: the run's folder goes on
    acc = events(run)
    tags = acc.Tags()
    assert {"loss/d", "loss/g", "D/real", "D/fake", "speed/images_per_s"} <= set(tags["scalars"])
    assert scalar_steps(acc, "loss/d") == [2, 4, 6, 8, 10, 12]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    for key, tag in (("d_loss", "loss/d"), ("g_loss", "loss/g"), ("d_fake", "D/fake")):
        assert [e.value for e in acc.Scalars(tag)] == pytest.approx([r[key] for r in log], rel=1e-6)
    grids = acc.Images("samples/fixed_noise")
    assert [g.step for g in grids] == [6, 12]  # one per epoch end
    assert (grids[0].width, grids[0].height) == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 of 28 px, 2 px pad
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # appended


def test_tensorboard_resume_purges_steps_logged_after_the_checkpoint(fake_dir, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    train(fake_dir, "--out", str(run), "--max-steps", "4", "--log-every", "2", "--tensorboard")
    # A process killed after its last checkpoint (step 4) had logged steps 5 and 6 already.
    stale = SummaryWriter(str(run / "tensorboard"))
    for step in (5, 6):
        stale.add_scalar("loss/d", 999.0, step)
    stale.close()
    main(["train", "--resume", str(run), "--max-steps", "8"])
    scalars = events(run).Scalars("loss/d")
    assert [e.step for e in scalars] == [2, 4, 6, 8]  # step 4 kept, the stale 5 and 6 gone
    assert 999.0 not in [e.value for e in scalars]


def test_tensorboard_missing_is_one_line_and_makes_no_run(fake_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    run = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--preset", "seed", "--dataset", "idx", "--data-dir",
                       str(fake_dir), "--out", str(run), "--max-steps", "2", "--tensorboard")
    assert code == 2 and "pip install 'mnistgan[tensorboard]'" in err
    assert len(err.strip().splitlines()) == 1 and not run.exists()


def test_tensorboard_off_by_default(fake_dir, tmp_path):
    run = tmp_path / "run"
    train(fake_dir, "--out", str(run), "--max-steps", "2", "--log-every", "1")
    assert not (run / "tensorboard").exists()


# -- config files ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", preset_names())
def test_printed_config_round_trips(preset, tmp_path, capsys):
    code, text, _ = cli(capsys, "train", "--preset", preset, "--max-steps", "7", "--print-config")
    assert code == 0
    path = tmp_path / "run.toml"
    path.write_text(text)
    expected = load_preset(preset).replace(train={"max_steps": 7})
    assert read_config_file(path) == expected
    # ... and printing it again through --config gives the same text: a fixed point.
    code, again, _ = cli(capsys, "train", "--config", str(path), "--print-config")
    assert code == 0 and again == text


@pytest.mark.parametrize("preset", preset_names())
def test_shipped_presets_are_config_files(preset):
    path = ROOT / "src" / "mnistgan" / "presets" / f"{preset}.toml"
    assert read_config_file(path) == load_preset(preset)


def test_unset_values_round_trip_as_comments():
    cfg = load_preset("seed").replace(train={"max_minutes": 2.5})
    text = to_toml(cfg)
    assert "# max_steps = (unset)" in text and "max_minutes = 2.5" in text
    assert RunConfig.from_dict(tomllib.loads(text)) == cfg


def test_flags_override_a_partial_config_over_its_preset(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "cdcgan"\n[train]\nbatch_size = 32\nseed = 5\n[optim]\nlr_g = 1e-3\n')
    code, text, _ = cli(capsys, "train", "--config", str(path), "--seed", "9", "--print-config")
    assert code == 0
    d = tomllib.loads(text)
    assert d["preset"] == "cdcgan" and d["model"]["num_classes"] == 10  # from the preset
    assert d["train"]["batch_size"] == 32 and d["optim"]["lr_g"] == 1e-3  # from the file
    assert d["train"]["seed"] == 9  # the flag wins


def test_yaml_config(tmp_path, capsys):
    require_optional("yaml")
    path = tmp_path / "mine.yaml"
    path.write_text("preset: dcgan\ntrain:\n  batch_size: 8\n")
    cfg = read_config_file(path)
    assert cfg == load_preset("dcgan").replace(train={"batch_size": 8})


@pytest.mark.parametrize("content, message", [
    ("[train]\nbatch_sise = 8\n", "unknown key train.batch_sise"),
    ("[train]\nbatch_size = \"8\"\n", "train.batch_size must be int, got '8'"),
    ("[optim]\nlr_g = -1.0\n", "optim.lr_g must be positive"),
    ("colour = 1\n", "unknown key colour"),
    ("train = 3\n", "train must be a table"),
    ("[train\n", "not valid TOML"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, capsys, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    code, out, err = cli(capsys, "train", "--config", str(path), "--out", str(tmp_path / "r"))
    assert code == 2 and out == ""
    assert err.startswith(f"mnistgan: error: --config {path}: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_config_trains_the_run_it_describes(fake_dir, tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_text('preset = "seed"\n[train]\nbatch_size = 8\nlog_every = 3\n')
    run = tmp_path / "run"
    train(fake_dir, "--config", str(path), "--out", str(run), "--max-steps", "3")
    written = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert written.train.batch_size == 8 and written.train.max_steps == 3
    assert written.data.dataset == "idx"  # the flag over the file
    code, _, err = cli(capsys, "train", "--resume", str(run), "--config", str(path))
    assert code == 2 and "--config cannot change on --resume" in err


# -- ONNX --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdcgan_run(tmp_path_factory) -> Path:
    """A class-conditional DCGAN (EMA) trained 3 steps on fake data."""
    return tiny_cdcgan_run(tmp_path_factory)


def torch_images(sampler, z, labels=None) -> np.ndarray:
    g = copy.deepcopy(sampler.G).float().eval()
    with torch.no_grad():
        return g(torch.from_numpy(z), None if labels is None else torch.from_numpy(labels)).numpy()


def test_onnx_matches_pytorch_on_any_batch(cdcgan_run, tmp_path, capsys):
    ort = require_optional("onnxruntime")
    from mnistgan.runtime import native_bf16
    from mnistgan.sampling import load_generator

    out = tmp_path / "generator.onnx"
    code, text, err = cli(capsys, "export-onnx", "--checkpoint", str(cdcgan_run), "--out", str(out))
    assert code == 0, err
    assert "z (N, 100), label (N,) -> images (N, 1, 28, 28)" in text
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("z", "tensor(float)"), ("label", "tensor(int64)")]
    assert [o.name for o in session.get_outputs()] == ["images"]
    sampler = load_generator(cdcgan_run)
    # The Sampler runs bf16 where that is native (fp32 elsewhere); the export is always fp32.
    assert sampler.dtype == (torch.bfloat16 if native_bf16(torch.device("cpu")) else torch.float32)
    rng = np.random.default_rng(0)
    for n in (1, 7, 33):  # the batch axis is dynamic
        z = rng.standard_normal((n, 100)).astype(np.float32)
        labels = rng.integers(0, 10, n).astype(np.int64)
        (images,) = session.run(None, {"z": z, "label": labels})
        assert images.shape == (n, 1, 28, 28) and images.dtype == np.float32
        np.testing.assert_allclose(images, torch_images(sampler, z, labels), atol=1e-5, rtol=1e-4)
        assert np.abs(images).max() <= 1.0
    # The label reaches the graph: another digit, other images.
    z = rng.standard_normal((4, 100)).astype(np.float32)
    a = session.run(None, {"z": z, "label": np.zeros(4, np.int64)})[0]
    b = session.run(None, {"z": z, "label": np.full(4, 7, np.int64)})[0]
    assert np.abs(a - b).max() > 1e-3


def test_onnx_unconditional_takes_only_noise(fake_dir, tmp_path, capsys):
    ort = require_optional("onnxruntime")
    from mnistgan.sampling import load_generator

    run = tmp_path / "run"
    train(fake_dir, "--out", str(run), "--max-steps", "2", "--log-every", "1")
    out = tmp_path / "seed.onnx"
    assert cli(capsys, "export-onnx", "--checkpoint", str(run), "--out", str(out))[0] == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z"]
    z = np.random.default_rng(1).standard_normal((5, 100)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"z": z})[0],
                               torch_images(load_generator(run), z), atol=1e-5, rtol=1e-4)


def test_onnx_bundled_generator(tmp_path, capsys):
    from mnistgan.pretrained import BUNDLE_SHA256

    out = tmp_path / "g.onnx"
    code, _, err = cli(capsys, "export-onnx", "--out", str(out))
    if not BUNDLE_SHA256:  # nothing bundled yet: one clear line
        assert code == 2 and "no generator is bundled" in err and not out.exists()
    else:
        assert code == 0 and out.stat().st_size > 1000, err


def test_onnx_missing_is_one_line(cdcgan_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, _, err = cli(capsys, "export-onnx", "--checkpoint", str(cdcgan_run),
                       "--out", str(tmp_path / "g.onnx"))
    assert code == 2 and err.strip() == ("mnistgan: error: ONNX export needs the onnx extra: "
                                         "pip install 'mnistgan[onnx]'")


def test_onnx_bad_out_folder(cdcgan_run, tmp_path, capsys):
    require_optional("onnx")
    code, _, err = cli(capsys, "export-onnx", "--checkpoint", str(cdcgan_run),
                       "--out", str(tmp_path / "nope" / "g.onnx"))
    assert code == 2 and "does not exist" in err


@pytest.mark.parametrize("fail_at", ["check", "write", "fsync", "rename"])
def test_onnx_failure_leaves_the_old_file_and_no_temp(cdcgan_run, tmp_path, monkeypatch, fail_at):
    """A failure at any step of the write: the old file stays whole, nothing else is left."""
    onnx = require_optional("onnx")
    from mnistgan import atomic
    from mnistgan.onnx import export_generator
    from mnistgan.sampling import load_generator

    out = tmp_path / "g.onnx"
    out.write_bytes(b"the old export")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    target = {"check": (onnx.checker, "check_model"), "fsync": (atomic.os, "fsync"),
              "rename": (atomic.os, "replace")}
    if fail_at == "write":
        monkeypatch.setattr(atomic, "open", lambda *a: _FailingFile(a[0]), raising=False)
    else:
        monkeypatch.setattr(*target[fail_at], boom)
    with pytest.raises(OSError):
        export_generator(load_generator(cdcgan_run), out)
    assert out.read_bytes() == b"the old export"
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]


class _FailingFile:
    """A file that is created on disk and then fails its first write (a full disk)."""

    def __init__(self, path):
        self.f = open(path, "wb")  # noqa: SIM115

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:10])
        raise OSError(28, "No space left on device")


# -- the notebook ------------------------------------------------------------------------------


def test_quickstart_notebook_runs(fake_dir, tmp_path):
    """examples/quickstart.ipynb top to bottom, small: 20 steps on the fake data, offline."""
    nbformat = require_optional("nbformat")
    nbclient = require_optional("nbclient")
    require_optional("ipykernel")
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    env = {"MNISTGAN_NB_STEPS": "20", "MNISTGAN_NB_DATASET": "idx",
           "MNISTGAN_NB_DATA_DIR": str(fake_dir), "MNISTGAN_NB_EVAL_N": "64",
           "MNISTGAN_NB_WORK": str(tmp_path / "work"), "MNISTGAN_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "finished after 20 steps" in text and "Inception score" in text
    assert sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs) >= 1
    work = tmp_path / "work"
    assert (work / "run" / "checkpoints" / "last.pt").is_file()
    train_npz = np.load(work / "synthetic" / "train.npz")
    assert train_npz["images"].shape == (200, 28, 28) and train_npz["images"].dtype == np.uint8
