"""The speed machinery: per-device precision and layout choices, fp16 loss scaling, the frozen
D of the G step, torch.compile, and `mnistgan bench` on fake data. Figures themselves are not
asserted here (they are the benchmark's job); what could break is."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest
import torch

import mnistgan.runtime as runtime
from conftest import run_cli
from mnistgan.config import load_preset
from mnistgan.data import load_dataset
from mnistgan.trainer import Trainer

CPU = torch.device("cpu")


@pytest.fixture
def fake_data(fake_dir):
    return load_dataset("idx", str(fake_dir), log=lambda _: None)


def trainer(fake_data, preset: str = "cdcgan", **train) -> Trainer:
    cfg = load_preset(preset).replace(train={"batch_size": 16, **train})
    return Trainer(cfg, fake_data, device=CPU, echo=lambda _: None)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_bf16_is_native(monkeypatch, fake_data, native):
    from mnistgan.sampling import Sampler

    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    want = "bf16" if native else "fp32"
    assert runtime.resolve_precision("auto", CPU) == want
    assert runtime.resolve_precision("fp32", CPU) == "fp32"  # an explicit choice stands
    t = trainer(fake_data, precision="auto")
    assert t.precision == want and t.autocast._enabled is native
    assert ("no native bf16" in t.speed) is not native
    # Sampling a bf16 run uses bf16 weights only where bf16 is native, fp32 elsewhere.
    cfg = load_preset("cdcgan").replace(train={"precision": "bf16"})
    monkeypatch.setattr("mnistgan.sampling.native_bf16", lambda device: native)
    sampler = Sampler(t.G, cfg, device=CPU, source="test")
    assert sampler.dtype == (torch.bfloat16 if native else torch.float32)


@pytest.mark.parametrize("native", [True, False])
def test_metrics_use_bf16_only_where_native(monkeypatch, native):
    import mnistgan.metrics.evaluator as evaluator
    import mnistgan.metrics.recipes as training

    monkeypatch.setattr(evaluator, "native_bf16", lambda device: native)
    monkeypatch.setattr(training, "native_bf16", lambda device: native)
    assert evaluator.load_evaluator().bf16 is native
    assert evaluator.load_evaluator(bf16=True).bf16 is True  # an explicit choice stands
    assert training.resolved_bf16(training.CAS_RECIPE) is native
    assert training.resolved_bf16(training.EVALUATOR_RECIPE) is True  # as the shipped file


# Feature flags of four kinds of host, as /proc/cpuinfo lists them (abridged).
SKYLAKE_SP = "fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni"
EPYC_ZEN2 = "fpu sse2 avx avx2 fma sha_ni"  # AVX2 only, like this project's usual hosts
SAPPHIRE_RAPIDS = SKYLAKE_SP + " avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
EPYC_ZEN4 = SKYLAKE_SP + " avx512_bf16 avx512vbmi"  # AVX512_BF16, no fp16 arithmetic


@pytest.mark.parametrize("flags, bf16, fp16", [
    (SKYLAKE_SP, False, False),  # AVX-512 without BF16: oneDNN would say yes and emulate
    (EPYC_ZEN2, False, False),
    (SAPPHIRE_RAPIDS, True, True),
    (EPYC_ZEN4, True, False),
    ("fp asimd bf16 i8mm sve", True, False),  # Arm Neoverse V1
])
def test_native_precision_follows_the_cpus_own_flags(flags, bf16, fp16):
    assert runtime.cpu_native("bf16", flags.split()) is bf16
    assert runtime.cpu_native("fp16", flags.split()) is fp16
    assert runtime.cpu_native("fp32", flags.split())


@pytest.mark.parametrize("capability, bf16", [((7, 0), False), ((7, 5), False), ((8, 0), True),
                                              ((8, 9), True), ((9, 0), True), ((10, 0), True)])
def test_native_bf16_on_cuda_from_ampere_on(capability, bf16):
    assert runtime.cuda_native("bf16", capability) is bf16
    assert runtime.cuda_native("fp16", capability) and runtime.cuda_native("fp32", capability)


def test_auto_precision_asks_the_cpu_not_onednn(monkeypatch):
    # oneDNN says yes to bf16 on any AVX-512 CPU; the CPU's flags decide.
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(SKYLAKE_SP.split()))
    assert runtime.resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(EPYC_ZEN4.split()))
    assert runtime.resolve_precision("auto", CPU) == "bf16"


def test_cpu_flags_are_read_from_cpuinfo():
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\nflags : x"
    assert runtime.parse_cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16\nCPU implementer\t: 0x41\n"
    assert runtime.parse_cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert runtime.parse_cpu_flags("processor\t: 0\n") == frozenset()


def test_this_machines_flags_agree_with_torchs_cpu_probe():
    # torch reads the CPU's flags through its own library (cpuinfo); the two must agree here.
    flags = runtime.cpu_flags()
    if platform.machine() in ("x86_64", "AMD64"):
        assert ("avx2" in flags) is torch.cpu._is_avx2_supported()
        assert ("avx512_bf16" in flags) is torch.cpu._is_avx512_bf16_supported()
        assert ("amx_tile" in flags) is torch.cpu._is_amx_tile_supported()
    assert runtime.native_bf16(CPU) is runtime.cpu_native("bf16", flags)


def test_memory_format_auto_is_channels_last_on_cpu_and_changes_little(fake_data):
    t = trainer(fake_data, "seed", precision="fp32")
    conv = t.G.downsample2[0].weight  # (25, 50, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert "channels-last" in t.speed
    c = trainer(fake_data, "seed", precision="fp32", memory_format="contiguous")
    assert all(p.is_contiguous() for p in c.G.parameters())
    for _ in range(2):
        t.train_step()
        c.train_step()
    # Same arithmetic in another order: equal to float rounding, not bit for bit.
    torch.testing.assert_close(t.window, c.window, rtol=1e-3, atol=1e-4)


def test_g_step_skips_ds_weight_gradients_and_keeps_gs_exact(fake_data):
    t = trainer(fake_data, precision="fp32")
    t.train_step()
    z, y = torch.randn(8, 100), torch.randint(0, 10, (8,))
    d_state = {k: v.clone() for k, v in t.D.state_dict().items()}  # spectral norm's vectors too
    # G's gradient through a D that computes its own weight gradients as well ...
    t.G.zero_grad(set_to_none=True)
    logits, classes = t.D(t.G(z, y), y, classes=True)
    (t.loss.g_loss(logits) + t.aux_weight_g * t.class_loss_g(classes, y)).backward()
    want = [p.grad.clone() for p in t.G.parameters()]
    assert all(p.grad is not None for p in t.D.parameters())
    # ... equals the G step's, through a frozen D that computes none.
    t.D.load_state_dict(d_state)
    t.D.zero_grad(set_to_none=True)
    t.latents = lambda n: (z, y)
    t.opt_g.step = lambda *args, **kwargs: None  # keep the gradients to look at
    t.g_step(8)
    assert all(p.grad is None for p in t.D.parameters())
    assert all(p.requires_grad for p in t.D.parameters())  # D trains again afterwards
    for p, w in zip(t.G.parameters(), want, strict=True):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-6)


def test_fp16_scales_losses_skips_overflowed_steps_and_resumes_its_scale(fake_data, tmp_path):
    t = trainer(fake_data, "seed", precision="fp16")
    assert t.scaler_d.is_enabled() and t.scaler_g.is_enabled()
    for _ in range(2):
        t.train_step()
    assert t.healthy()
    # A huge scale overflows fp16 gradients: the step is skipped and the scale halved, and the
    # run goes on (in fp16 an overflow is routine, not a divergence).
    t.scaler_d.update(2.0**100)
    d_before = [p.detach().clone() for p in t.D.parameters()]
    t.train_step()
    assert all(torch.equal(p, b) for p, b in zip(t.D.parameters(), d_before, strict=True))
    assert t.scaler_d.get_scale() == 2.0**99
    assert t.healthy()
    state = t.state_dict()
    assert state["scalers"]["d"]["scale"] == 2.0**99
    r = trainer(fake_data, "seed", precision="fp16")
    r.load_state_dict(state)
    assert r.scaler_d.get_scale() == 2.0**99 and r.scaler_g.get_scale() == t.scaler_g.get_scale()


def test_fp16_with_gradient_penalties_is_refused():
    from mnistgan.errors import UserError

    with pytest.raises(UserError, match="fp16 does not scale"):
        load_preset("cdcgan").replace(optim={"r1_gamma": 1.0}, train={"precision": "fp16"})


def test_compiled_training_matches_eager_and_saves_plain_weights(fake_dir, tmp_path, capsys):
    runs = {}
    for name, flag in (("eager", "--no-compile"), ("compiled", "--compile")):
        runs[name] = tmp_path / name
        code, out, err = run_cli(capsys, "train", "--preset", "dcgan", "--dataset", "idx",
                                 "--data-dir", str(fake_dir), "--out", str(runs[name]),
                                 "--max-steps", "2", "--batch-size", "16", "--log-every", "1",
                                 "--precision", "fp32", flag)
        assert code == 0, err
    from mnistgan.checkpoint import load_checkpoint

    eager, compiled = (load_checkpoint(r / "checkpoints" / "last.pt") for r in runs.values())
    assert compiled["config"]["train"]["compile"] is True
    assert compiled["generator"].keys() == eager["generator"].keys()  # no "_orig_mod." prefix
    for part in ("generator", "discriminator"):
        for k, v in eager[part].items():
            torch.testing.assert_close(compiled[part][k], v, rtol=1e-3, atol=1e-4)


def test_bench_prints_every_row_beside_the_tutorial(fake_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNISTGAN_CACHE", str(tmp_path / "cache"))  # real-data stats land here
    out = tmp_path / "bench.json"
    code, text, err = run_cli(capsys, "bench", "--dataset", "idx", "--data-dir", str(fake_dir),
                              "--seconds", "0.3", "--repeats", "2", "--precision", "fp32",
                              "--seed-batch-sizes", "16,32", "--report-n", "64", "--json", str(out))
    assert code == 0, err
    assert "| tutorial loop | 16 | fp32 |" in text and "matmul peak: fp32" in text
    result = json.loads(out.read_text())
    rows = {(r["name"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {("tutorial loop", 16), ("seed preset", 16), ("seed preset", 32),
                         ("cdcgan preset", 64)}
    assert all(len(r["rates"]) == 2 and r["images_per_s"] > 0 for r in rows.values())
    # The tutorial's loop does more arithmetic per image than the seed preset's step: it runs G
    # twice and back-propagates D's loss into G; the preset's step does neither.
    tutorial, seed = rows["tutorial loop", 16], rows["seed preset", 16]
    assert tutorial["mflop_per_image"] > 1.2 * seed["mflop_per_image"]
    assert rows["seed preset", 16]["mflop_per_image"] == pytest.approx(
        rows["seed preset", 32]["mflop_per_image"], rel=0.01)  # per image: batch-independent
    assert result["generation_images_per_s"] > 0 and result["report_n"] == 64
    assert "evaluator report on 64 samples" in text
    assert list((tmp_path / "cache").iterdir())  # the cache followed $MNISTGAN_CACHE


def test_bench_row_figures_and_table():
    from mnistgan.bench import Row, summary, table

    # Three windows of 10, 30 and 20 images/s at 2 GFLOP an image, beside a tutorial at 8
    # images/s, on a device whose fp32 peak is 160 GFLOP/s and whose bf16 is emulated.
    row = Row("seed preset", 16, "fp32", iter(()), 2e9, rates=[10.0, 30.0, 20.0])
    r = summary(row, base=8.0, peak=160.0)
    assert r["images_per_s"] == 20.0  # the median window
    assert r["x_tutorial"] == 2.5 and r["gflops"] == 40.0 and r["share_of_peak"] == 0.25
    assert r["mflop_per_image"] == 2000.0
    bf16 = summary(Row("seed preset", 16, "bf16", iter(()), 2e9, rates=[4.0]), 8.0, 10.0)
    result = {"device": "cpu: test", "torch": "x", "threads": 2, "native_bf16": False,
              "emulated": ["bf16"], "seconds": 5, "repeats": 3,
              "peak_gflops": {"fp32": 160.0, "bf16": 10.0}, "rows": [r, bf16]}
    text = table(result)
    assert "| seed preset | 16 | fp32 | 20 | 2.5x | 2000 | 40.0 | 25.0% |" in text
    assert "| seed preset | 16 | bf16 | 4 | 0.5x | 2000 | 8.0 | emulated |" in text
    assert "bf16 10.0 GFLOP/s (emulated)" in text and "native bf16: no" in text


@pytest.mark.parametrize("args, message", [
    (["--precision", "fp64"], "--precision 'fp64': expected a comma-separated list of fp32"),
    (["--seed-batch-sizes", "16,0"], "--seed-batch-sizes '16,0'"),
    (["--seed-batch-sizes", "a"], "--seed-batch-sizes 'a'"),
    (["--json", "/nonexistent/x.json"], "--json /nonexistent/x.json: folder"),
])
def test_bench_bad_options_are_one_line(capsys, args, message):
    code, out, err = run_cli(capsys, "bench", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_gpu_script_is_valid_bash():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "--device cuda" in script.read_text()
