"""``lazy_module``: a module name bound now, imported on first use, then the module itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

from ctloop.core.lazy import lazy_module


def test_an_imported_module_is_returned_as_it_is() -> None:
    namespace: dict[str, Any] = {}
    assert lazy_module("json", namespace, "json") is sys.modules["json"]


def test_the_first_use_imports_and_rebinds_the_name() -> None:
    script = textwrap.dedent('''
        import sys
        from ctloop.core.lazy import lazy_module, loaded
        mod = lazy_module("wave", globals(), "mod")
        assert "wave" not in sys.modules and loaded("wave") is None
        assert mod.WAVE_FORMAT_PCM == 1
        assert mod is sys.modules["wave"] and loaded("wave") is mod
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_threads_using_it_at_once_see_one_module() -> None:
    script = textwrap.dedent('''
        import sys, threading
        from ctloop.core.lazy import lazy_module
        mod = lazy_module("tabnanny", globals(), "mod")
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(mod.check)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert seen == [sys.modules["tabnanny"].check] * 8 and mod is sys.modules["tabnanny"]
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
