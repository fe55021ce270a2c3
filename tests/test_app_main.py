"""`python app.py` starts the server on the configured host and port and serves the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_app_py_serves_the_page(tmp_path):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path / "app.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        page = ""
        while time.time() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                    break
            except OSError:
                time.sleep(1)
        assert process.poll() is None, (tmp_path / "app.log").read_text()[-2000:]
        assert "Traceback" not in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as response:
            config = response.read().decode()
        assert json.loads(config)["title"] == "Rerank Lens"  # the page's title, as the browser tab shows it
        assert "knowledge (bundled)" in config and "Traceback" not in config
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
