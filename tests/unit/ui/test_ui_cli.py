"""`ctloop ui`: binds 127.0.0.1 by default and serves the dashboard; bad options are one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ctloop.cli.main import main
from ctloop.core.net import free_port
from ctloop.testing.services import patience


def test_bad_port_is_a_one_line_error(ctloop_home: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bad input: The --port must be between 1 and 65535. Got 70000."


def test_ctloop_ui_serves_on_localhost(ctloop_home: Path) -> None:
    port = free_port()
    command = [sys.executable, "-c", "import sys; from ctloop.cli.main import main; "
               "sys.exit(main())", "ui", "--port", str(port)]
    proc = subprocess.Popen(command,
                            cwd=ctloop_home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + patience(30)
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/runs", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    stderr = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"ctloop ui did not start: {stderr}") from None
                time.sleep(0.2)
        assert response.status_code == 200 and "No runs match" in response.text
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        css = httpx.get(f"http://127.0.0.1:{port}/static/vendor/uPlot.iife.min.js")
        assert css.status_code == 200 and "uPlot" in css.text
    finally:
        proc.terminate()
        proc.wait(10)
    assert "http://127.0.0.1:" in proc.stderr.read().decode()  # type: ignore[union-attr]
