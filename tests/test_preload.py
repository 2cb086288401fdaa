"""Trainer hosts import what a trial needs when they start (ray_xt.preload): every named module exists in the
pinned stack."""

import subprocess
import sys


def test_every_preloaded_module_imports_with_the_installed_versions():
    # A module renamed by a transformers/DeepSpeed upgrade would silently stop being preloaded (preload is
    # best effort at run time); this test is where that shows.
    code = ("import sys, ray_xt.preload as p\n"
            "print(p.MISSING)\n"
            "print(all(m in sys.modules for m in p.MODULES))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "True"]


def test_a_module_that_cannot_be_imported_is_reported_not_raised(monkeypatch):
    import ray_xt.preload as preload

    monkeypatch.setattr(preload, "MODULES", ("json", "ray_xt_no_such_module"))
    assert preload.preload() == ["ray_xt_no_such_module"]
