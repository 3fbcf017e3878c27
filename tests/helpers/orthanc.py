"""A throw-away Orthanc PACS with its DICOMweb plugin, started by hand for tests (never the system service).

``start_orthanc(folder)`` runs ``Orthanc <folder>/orthanc.json`` on 127.0.0.1 with a free HTTP port, the DICOM (DIMSE)
server off, its storage and index under ``folder``, remote access and authentication off, and only the DICOMweb plugin
loaded; it waits until ``/system`` answers and stops the process on exit. ``require_orthanc()`` skips the test when
the binary or the plugin is missing.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_REASON = "Orthanc with its DICOMweb plugin is not installed (Debian: apt-get install orthanc orthanc-dicomweb)"

#: Environment variables that point at a non-Debian install.
BINARY_ENV = "ORTHANC_BINARY"
PLUGIN_ENV = "ORTHANC_DICOMWEB_PLUGIN"

# Debian installs the binary to /usr/sbin (not on a normal user's PATH) and links the plugin into the plugins folder
_BINARY_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/local/sbin/Orthanc", "/usr/local/bin/Orthanc")
_PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so*",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so*",
)


@dataclass
class OrthancServer:
    """A running Orthanc: ``url`` is its REST root, ``dicomweb`` the DICOMweb root, ``log`` its output."""

    url: str
    process: subprocess.Popen
    log: Path
    folder: Path

    @property
    def dicomweb(self) -> str:
        """The DICOMweb base URL (QIDO-RS, WADO-RS and STOW-RS are under it)."""
        return f"{self.url}/dicom-web"

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines Orthanc wrote."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def find_orthanc() -> tuple[str, str] | None:
    """``(binary, DICOMweb plugin)`` paths, or ``None`` when either is missing."""
    binary = os.environ.get(BINARY_ENV) or shutil.which("Orthanc")
    if not binary:
        binary = next((p for p in _BINARY_CANDIDATES if os.access(p, os.X_OK)), None)
    plugin = os.environ.get(PLUGIN_ENV)
    if not plugin:
        # the first folder that has it (Debian's plugins folder first), its shortest name (the unversioned link)
        found = ([p for p in sorted(glob.glob(pattern), key=len) if os.path.isfile(p)] for pattern in _PLUGIN_GLOBS)
        plugin = next((paths[0] for paths in found if paths), None)
    if not binary or not os.access(binary, os.X_OK) or not plugin or not os.path.isfile(plugin):
        return None
    return binary, plugin


def require_orthanc() -> tuple[str, str]:
    """``find_orthanc()``, or skip the test with the install hint."""
    found = find_orthanc()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def orthanc_config(folder: Path, port: int, plugin: str) -> dict:
    """The configuration of a private Orthanc: loopback HTTP on ``port``, no DIMSE, everything under ``folder``."""
    return {
        "Name": "mflag-monai-tests",
        "HttpPort": port,
        "RemoteAccessAllowed": False,  # with it off Orthanc only answers loopback clients
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "Plugins": [plugin],  # the plugin file only: the plugins folder also holds worklists and serve-folders
        "SaveJobs": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": f"127.0.0.1:{port}"},
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/system", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _plugins(url: str) -> list[str]:
    """The plugins Orthanc loaded: it starts without one whose file it cannot load, with a warning only."""
    try:
        with urllib.request.urlopen(f"{url}/plugins", timeout=5) as response:
            return list(json.loads(response.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return []


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@contextmanager
def start_orthanc(folder: Path, timeout: float = 30.0) -> Iterator[OrthancServer]:
    """Run a private Orthanc under ``folder`` until the ``with`` block ends (skips the test when not installed).

    Raises:
        RuntimeError: Orthanc exited or did not answer within ``timeout`` seconds; the message ends with its log.
    """
    binary, plugin = require_orthanc()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # the free port can be taken between choosing it and Orthanc binding it
        port = _free_port()
        config = folder / "orthanc.json"
        config.write_text(json.dumps(orthanc_config(folder, port, plugin), indent=2))
        log = folder / f"orthanc-{attempt}.log"
        with open(log, "wb") as out:  # Orthanc logs to stderr unless told otherwise
            process = subprocess.Popen(
                [binary, str(config)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder
            )
        server = OrthancServer(f"http://127.0.0.1:{port}", process, log, folder)
        try:
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline and not _answers(server.url):
                time.sleep(0.1)
            if process.poll() is None and _answers(server.url):
                if "dicom-web" in _plugins(server.url):
                    break
                raise RuntimeError(
                    f"Orthanc started at {server.url} without its DICOMweb plugin ({plugin}); its log:\n"
                    f"{server.log_tail()}"
                )
            exited = process.poll()
            _stop(process)
            if exited is not None and attempt < 2 and "already in use" in server.log_tail():
                continue
            state = f"exited with status {exited}" if exited is not None else f"did not answer within {timeout:g} s"
            raise RuntimeError(
                f"Orthanc ({binary}, config {config}) {state} at {server.url}/system; its log:\n{server.log_tail()}"
            )
        except BaseException:
            _stop(process)
            raise
    try:
        yield server
    finally:
        _stop(process)
