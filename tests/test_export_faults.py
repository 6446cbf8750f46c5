"""`generate --overwrite` trusts no file and loses nothing: a crafted or malformed manifest is
one line with nothing touched, and a failure of any single filesystem call, or a kill at any
moment of a replace, leaves OUT with the whole old export or the whole new one."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import conftest
from mnistgan.errors import UserError
from mnistgan.export import ExportOptions, export_dataset, recover, verify
from mnistgan.sampling import Sampler, load_generator

OPS = [(os, "replace"), (os, "rename"), (os, "unlink"), (shutil, "rmtree"), (os, "fsync")]
OLD = ExportOptions(n_train=20, n_test=5, format="npz")
NEW = ExportOptions(n_train=30, n_test=5, seed=1, overwrite=True)  # npz -> idx: new names


@pytest.fixture(scope="module")
def sampler(tmp_path_factory) -> Sampler:
    return load_generator(conftest.tiny_cdcgan_run(tmp_path_factory))


def tree(root: Path) -> dict[str, bytes]:
    """Every visible file under root by relative path (the manifest without its timing)."""
    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith("."):
            data = p.read_bytes()
            if rel == "manifest.json" and b'"timing"' in data:
                data = json.dumps({**json.loads(data), "timing": None}).encode()
            files[rel] = data
    return files


@pytest.fixture(scope="module")
def states(sampler, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """The old export and the new one, as a replace without faults leaves them."""
    out = tmp_path_factory.mktemp("ref") / "synth"
    export_dataset(sampler, out, OLD)
    old = tree(out)
    export_dataset(sampler, out, NEW)
    return {"old": old, "new": tree(out)}


def which(out: Path, states: dict) -> str:
    """'old' or 'new' when OUT holds that whole export and nothing else; else fails."""
    verify(out)  # every file the manifest lists, with its sha256
    got = tree(out)
    assert got in (states["old"], states["new"]), sorted(got)
    return "old" if got == states["old"] else "new"


class Counter:
    """Wraps the filesystem calls in OPS: counts them and runs `hook(op, k)` before the k-th
    call of each op (k from 1)."""

    def __init__(self, monkeypatch, hook=lambda op, k: None):
        self.calls = {name: 0 for _, name in OPS}
        for module, name in OPS:
            real = getattr(module, name)

            def wrapped(*args, _real=real, _name=name, **kwargs):
                self.calls[_name] += 1
                hook(_name, self.calls[_name])
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, wrapped)


def fault_plan(sampler, tmp_path_factory) -> list[tuple[str, int]]:
    """Every (op, k) a clean replace makes: the failures to inject, one at a time."""
    out = tmp_path_factory.mktemp("count") / "synth"
    export_dataset(sampler, out, OLD)
    with pytest.MonkeyPatch.context() as mp:
        counter = Counter(mp)
        export_dataset(sampler, out, NEW)
    return [(op, k) for op, n in counter.calls.items() for k in range(1, n + 1)]


def test_every_single_failure_leaves_a_whole_export(sampler, states, tmp_path,
                                                    tmp_path_factory):
    plan = fault_plan(sampler, tmp_path_factory)
    assert {op for op, _ in plan} == {name for _, name in OPS}  # every op is exercised
    outcomes = {"old": 0, "new": 0}
    for i, (op, k) in enumerate(plan):
        out = tmp_path / str(i)
        export_dataset(sampler, out, OLD)

        def fail(name, n, op=op, k=k):
            if name == op and n == k:
                raise OSError(errno.EIO, f"injected {op} failure")

        logged = []
        with pytest.MonkeyPatch.context() as mp:
            Counter(mp, fail)
            try:
                export_dataset(sampler, out, NEW, log=logged.append)
                said = "new"
            except UserError as e:
                assert "still holds the earlier export, unchanged" in str(e), (op, k, e)
                assert "\n" not in str(e)
                said = "old"
        got = which(out, states)
        assert got == said, (op, k, logged)  # the message says which export OUT holds
        outcomes[got] += 1
        recover(out, print)  # whatever was left hidden goes; the export stays whole
        assert which(out, states) == got and not list(out.glob(".mnistgan-*")), (op, k)
    assert outcomes["old"] and outcomes["new"] and sum(outcomes.values()) == len(plan) >= 20


def test_a_kill_at_any_call_is_recovered(sampler, states, tmp_path):
    """A SIGKILL just before any filesystem call of a replace leaves OUT as a copy taken at
    that instant shows it; the next export into OUT (`recover`) makes it one whole export."""
    out, snapshots = tmp_path / "synth", []
    export_dataset(sampler, out, OLD)
    copytree = shutil.copytree

    def snapshot(name, k):
        snapshots.append((name, k, tmp_path / f"kill-{len(snapshots)}"))
        copytree(out, snapshots[-1][2], symlinks=True)

    with pytest.MonkeyPatch.context() as mp:
        Counter(mp, snapshot)
        export_dataset(sampler, out, NEW)
    seen = set()
    for name, k, copy in snapshots:
        recover(copy, lambda _: None)
        seen.add(which(copy, states))
        assert not list(copy.glob(".mnistgan-*")), (name, k)
    assert seen == {"old", "new"} and len(snapshots) >= 20


@pytest.mark.parametrize("entries", [
    ["../victim"], ["/tmp"], ["MNIST/../../victim"], "MNIST", [1], [None], ["README.md"],
])
def test_crafted_manifest_is_refused_and_nothing_touched(sampler, tmp_path, capsys, entries):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    out = tmp_path / "synth"
    export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0))
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "entries": entries}))
    before = tree(out)
    with pytest.raises(UserError, match="is not an mnistgan manifest") as e:
        export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0, overwrite=True))
    assert "\n" not in str(e.value)
    assert tree(out) == before and (victim / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("text", [
    "{not json", "[]", '"x"', '{"entries": ["MNIST"]}', '{"created_by": "mnistgan generate"}',
    '{"created_by": "mnistgan generate", "format": "../idx", "entries": ["MNIST"]}',
    '{"created_by": "mnistgan generate", "format": ["idx"], "entries": ["MNIST"]}',
    '{"created_by": "mnistgan generate", "format": "idx", "entries": {"MNIST": 1}}',
])
def test_malformed_manifest_is_one_line_exit_2(sampler, tmp_path, capsys, text):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "MNIST").mkdir()
    (out / "manifest.json").write_text(text)
    before = tree(out)
    with pytest.raises(UserError, match="not an mnistgan manifest"):
        export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0, overwrite=True))
    assert tree(out) == before and (out / "MNIST").is_dir()


def test_foreign_manifest_via_cli_is_one_line(sampler, tmp_path, capsys):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"created_by": "someone", "entries": [".."]}))
    code, _, err = conftest.run_cli(capsys, "generate", "--checkpoint", sampler.source, "--out",
                                    str(out), "--n-train", "10", "--n-test", "0", "--overwrite")
    assert code == 2 and "not an mnistgan manifest" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_symlinked_entry_is_moved_not_followed(sampler, tmp_path):
    """An old export whose entry is a symlink to a folder outside OUT: the link is set aside and
    removed, the folder it points to is untouched."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "raw").mkdir(parents=True)
    (elsewhere / "raw" / "keep.txt").write_text("precious")
    out = tmp_path / "synth"
    export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0))
    shutil.rmtree(out / "MNIST")
    (out / "MNIST").symlink_to(elsewhere, target_is_directory=True)
    export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0, overwrite=True))
    assert (elsewhere / "raw" / "keep.txt").read_text() == "precious"
    assert not (out / "MNIST").is_symlink() and verify(out)["format"] == "idx"


def test_crafted_hidden_folders_never_replace_a_visible_export(sampler, tmp_path):
    """A shared folder that carries folders named like an interrupted replace (with a staged
    'export' of its own) and a symlinked one: the next export into it neither takes the staged
    files for a new export nor follows the link; only the hidden folders go."""
    out, elsewhere = tmp_path / "synth", tmp_path / "elsewhere"
    export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0))
    before = tree(out)
    (out / ".mnistgan-replaced-999999").mkdir()
    export_dataset(sampler, tmp_path / "other", ExportOptions(n_train=10, n_test=0, seed=5))
    os.rename(tmp_path / "other", out / ".mnistgan-export-999999")
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    (out / ".mnistgan-replaced-999998").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UserError, match="already holds an export"):
        export_dataset(sampler, out, ExportOptions(n_train=10, n_test=0))
    assert tree(out) == before and verify(out)["seed"] == 0
    assert not (out / ".mnistgan-export-999999").exists()
    assert (elsewhere / "keep.txt").read_text() == "precious"
