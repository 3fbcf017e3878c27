"""Fixtures for the DICOM input/output tests: a private Orthanc PACS with DICOMweb."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.orthanc import OrthancServer, require_orthanc, start_orthanc


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A private Orthanc (``.url``, ``.dicomweb``), started once; skips when Orthanc or its plugin is missing.

    Shared by every test: each stores its own study (new UIDs), so none sees another's instances. Orthanc starts in
    a fraction of a second but takes about 2 s to stop.
    """
    require_orthanc()
    with start_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
