"""A real MONAI Label server for tests: the app (``scripts/monailabel_app``) started over HTTP on 127.0.0.1, and the
requests a viewer sends it.

``run_monailabel(root, studies, conf)`` copies the app under ``root`` (the server writes into its app folder: logs,
model, bin), starts ``python -m monailabel.main start_server`` in its own process group on a free port, waits until
``/info/`` answers, and stops the whole group on exit; the server's output goes to ``root/server.log``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.bundles import APP

START_TIMEOUT = 90.0  # seconds; about 10-20 s on 2 busy CPU cores


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 30.0) -> bytes:
    """The body of ``GET url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def infer(base: str, model: str, image: str, output: str, params: Mapping[str, Any]) -> bytes:
    """``POST /infer/<model>?image=<id>&output=...`` with the ``params`` form field, as the viewers send it."""
    query = urllib.parse.urlencode({"image": image, "output": output})
    body = urllib.parse.urlencode({"params": json.dumps(dict(params))}).encode()
    request = urllib.request.Request(f"{base}/infer/{model}?{query}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def save_label(base: str, image: str, filename: str, data: bytes, params: Mapping[str, Any]) -> dict:
    """``PUT /datastore/label?image=<id>``: the label file and the ``params`` form field, as a viewer saves a label."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(dict(params))}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="label"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    query = urllib.parse.urlencode({"image": image})
    request = urllib.request.Request(
        f"{base}/datastore/label?{query}",
        data=body,
        method="PUT",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextmanager
def run_monailabel(
    root: Path, studies: str, conf: Mapping[str, str], env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve the app on ``studies`` (a folder or a DICOMweb URL) with ``--conf`` pairs; yield its base URL.

    Raises:
        pytest's failure: the server exited, or did not answer within :data:`START_TIMEOUT`; with its log's tail.
    """
    import pytest

    app = root / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "model", "logs", "bin"))
    port = free_port()
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", studies]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    for key, value in conf.items():
        cmd += ["--conf", key, value]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MONAI_LABEL_SESSIONS": "false",
        "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false",
        **(env or {}),
    }
    log_path = root / "server.log"
    with log_path.open("w") as log:
        # its own process group: uvicorn may start children, and all of them must go when the test ends
        process = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-5000:]}")
                try:
                    get(f"{base}/info/", timeout=5)
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        pytest.fail(f"server not up after {START_TIMEOUT} s:\n{log_path.read_text()[-5000:]}")
                    time.sleep(0.5)
            yield base
        finally:
            _stop(process)
