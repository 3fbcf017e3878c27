"""mflag_monai.dicom.web against a real Orthanc: files stored with STOW-RS are found with QIDO-RS and come back
with WADO-RS as the same Part-10 files (UIDs, transfer syntax, pixel bytes); user-fixable failures are one line."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from helpers.dicom import CR_IMAGE_STORAGE, DX_IMAGE_STORAGE, write_dicom, write_radiograph

pytest.importorskip("dicomweb_client")

import pydicom  # noqa: E402
from pydicom.uid import RLELossless, generate_uid  # noqa: E402

from mflag_monai.dicom.web import fetch_instances, find_instances, store_instances  # noqa: E402
from mflag_monai.utils.errors import InputError  # noqa: E402


def _study(folder: Path) -> tuple[str, dict[str, list[Path]]]:
    """One study: series "pa" with two CR instances (one RLE-compressed), series "lat" with one DX instance."""
    study = generate_uid()
    series = {"pa": generate_uid(), "lat": generate_uid()}
    files: dict[str, list[Path]] = {"pa": [], "lat": []}
    for i, (name, modality) in enumerate([("pa", "CR"), ("pa", "CR"), ("lat", "DX")]):
        path = write_radiograph(
            folder / f"in{i}.dcm",
            modality=modality,
            shape=(16, 12 + i),  # a different size each: pixel data that cannot be mixed up
            StudyInstanceUID=study,
            SeriesInstanceUID=series[name],
            SeriesNumber=1 + (name == "lat"),
            InstanceNumber=i + 1,
            ViewPosition="PA" if name == "pa" else "LATERAL",
        )
        if i == 1:  # a compressed one: the server must hand it back as stored, not transcoded
            ds = pydicom.dcmread(path)
            ds.compress(RLELossless)
            ds.save_as(path)
        files[name].append(path)
    return study, files


@pytest.fixture(scope="module")
def stored(orthanc, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[Path]]]:
    """A study written to files and stored on the module's Orthanc."""
    study, files = _study(tmp_path_factory.mktemp("study"))
    store_instances(orthanc.dicomweb, files["pa"] + files["lat"])
    return study, files


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def _assert_same_instance(original: Path, fetched: Path) -> None:
    a, b = pydicom.dcmread(original), pydicom.dcmread(fetched)
    assert fetched.read_bytes()[128:132] == b"DICM"
    assert b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
    assert b.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        assert b[key].value == a[key].value
    assert b.PixelData == a.PixelData


@pytest.mark.slow
def test_stored_instances_are_found_by_qido(orthanc, stored) -> None:
    study, files = stored
    rows = find_instances(orthanc.dicomweb, study)
    expected = sorted(
        (pydicom.dcmread(p).SeriesInstanceUID, pydicom.dcmread(p).SOPInstanceUID) for p in files["pa"] + files["lat"]
    )
    assert [(r["SeriesInstanceUID"], r["SOPInstanceUID"]) for r in rows] == expected
    assert {r["StudyInstanceUID"] for r in rows} == {study}
    assert sorted(r["SOPClassUID"] for r in rows) == sorted([CR_IMAGE_STORAGE] * 2 + [DX_IMAGE_STORAGE])
    assert all(isinstance(v, str) for r in rows for v in r.values())

    dx = find_instances(orthanc.dicomweb, study, modality="DX")
    assert [r["SOPInstanceUID"] for r in dx] == [pydicom.dcmread(files["lat"][0]).SOPInstanceUID]
    assert find_instances(orthanc.dicomweb, study, modality="SEG") == []
    assert find_instances(orthanc.dicomweb, generate_uid()) == []


@pytest.mark.slow
def test_fetch_study_writes_the_stored_files_back(orthanc, stored, tmp_path: Path) -> None:
    study, files = stored
    paths = fetch_instances(orthanc.dicomweb, study, None, tmp_path)
    assert paths == sorted(paths) and len(paths) == 3
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: p for p in files["pa"] + files["lat"]}
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert path == tmp_path / study / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        _assert_same_instance(by_uid[ds.SOPInstanceUID], path)
    compressed = pydicom.dcmread(files["pa"][1], stop_before_pixels=True)
    fetched = tmp_path / study / compressed.SeriesInstanceUID / f"{compressed.SOPInstanceUID}.dcm"
    assert pydicom.dcmread(fetched).file_meta.TransferSyntaxUID == RLELossless


@pytest.mark.slow
def test_fetch_series_writes_only_that_series(orthanc, stored, tmp_path: Path) -> None:
    study, files = stored
    series = pydicom.dcmread(files["pa"][0]).SeriesInstanceUID
    paths = fetch_instances(orthanc.dicomweb, study, series, tmp_path)
    assert [p.parent for p in paths] == [tmp_path / study / series] * 2
    originals = sorted(files["pa"], key=lambda p: pydicom.dcmread(p).SOPInstanceUID)
    for original, path in zip(originals, paths):
        _assert_same_instance(original, path)


@pytest.mark.slow
def test_unknown_study_or_series_is_an_input_error(orthanc, stored, tmp_path: Path) -> None:
    study, _ = stored
    unknown = generate_uid()
    with pytest.raises(InputError) as err:
        fetch_instances(orthanc.dicomweb, unknown, None, tmp_path)
    message = str(err.value)
    assert unknown in message and orthanc.dicomweb in message and "check" in message and "\n" not in message
    with pytest.raises(InputError, match=unknown):
        fetch_instances(orthanc.dicomweb, study, unknown, tmp_path)
    assert not any(tmp_path.iterdir())


def test_unreachable_server_is_a_one_line_input_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    study = generate_uid()
    with pytest.raises(InputError) as err:
        fetch_instances(url, study, None, tmp_path, timeout=2, retries=0)
    message = str(err.value)
    assert "\n" not in message and url in message and study in message
    assert "cannot be reached" in message and "check the URL" in message
    with pytest.raises(InputError, match="cannot be reached"):
        find_instances(url, study, timeout=2)
    path = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4), np.uint16))
    with pytest.raises(InputError, match="a.dcm") as err:
        store_instances(url, [path], timeout=2)
    assert url in str(err.value)


def test_bad_inputs_fail_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a DICOM UID"):
        fetch_instances("http://127.0.0.1:1/dicom-web", "1.2.abc", None, tmp_path)
    with pytest.raises(InputError, match="http://"):
        find_instances("pacs:8042/dicom-web", "1.2.3")
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    with pytest.raises(InputError, match="not a Part-10 DICOM file") as err:
        store_instances("http://127.0.0.1:1/dicom-web", [text])
    assert str(text) in str(err.value)


class _BusyThenEmpty(BaseHTTPRequestHandler):
    """Answers "busy" (503, Retry-After 0) to the first ``busy`` requests, then an empty QIDO-RS result."""

    busy = 2
    seen = 0

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        type(self).seen += 1
        if type(self).seen <= type(self).busy:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "2")
        self.end_headers()
        if type(self).seen > type(self).busy:
            self.wfile.write(b"[]")

    def log_message(self, *args: object) -> None:
        pass


def test_busy_answers_are_retried_a_bounded_number_of_times() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BusyThenEmpty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    try:
        assert find_instances(url, "1.2.3", retries=2) == []
        assert _BusyThenEmpty.seen == 3
        _BusyThenEmpty.seen = 0
        with pytest.raises(InputError, match=r"busy \(HTTP 503\)"):
            find_instances(url, "1.2.3", retries=1)
        assert _BusyThenEmpty.seen == 2
    finally:
        server.shutdown()
        server.server_close()
