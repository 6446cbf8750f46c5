"""What every test gets from conftest.py: optional-dependency skips that CI turns into failures,
a torch thread count no test can leak into the next, and a metrics cache outside ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conftest import THREADS, require_optional, skip_optional
from mnistgan.metrics.stats_cache import cache_dir

MISSING = "mnistgan_no_such_module"


@pytest.mark.parametrize("var", ["MNISTGAN_REQUIRE_OPTIONAL", "MNISTGAN_REQUIRE_BROWSER"])
def test_the_switch_turns_optional_skips_into_failures(monkeypatch, var):
    for name in ("MNISTGAN_REQUIRE_OPTIONAL", "MNISTGAN_REQUIRE_BROWSER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_optional(MISSING)
    with pytest.raises(pytest.skip.Exception, match="no browser"):
        skip_optional("no browser")
    monkeypatch.setenv(var, "1")
    with pytest.raises(pytest.fail.Exception, match=f"MNISTGAN_REQUIRE_OPTIONAL=1 but {MISSING}"):
        require_optional(MISSING)
    with pytest.raises(pytest.fail.Exception, match="no browser"):
        skip_optional("no browser")
    assert require_optional("json").dumps([1]) == "[1]"  # present modules are returned


def test_a_test_that_changes_the_thread_count():
    torch.set_num_threads(THREADS + 2)  # as `serve` does (1) or a module that wants 2


def test_the_next_test_has_the_sessions_thread_count():
    """Runs after the one above (file order): the autouse fixture put the count back."""
    assert torch.get_num_threads() == THREADS


def test_the_metrics_cache_is_a_temp_folder():
    home = Path.home() / ".cache"
    assert os.environ["MNISTGAN_CACHE"] and home not in cache_dir().parents
    assert cache_dir().is_dir() and cache_dir() == Path(os.environ["MNISTGAN_CACHE"])
