"""DICOMweb in and out: a study's (or series') instances fetched to Part-10 files (WADO-RS), files stored (STOW-RS)
and a study's instances listed (QIDO-RS).

Every request is bounded: a connect and a read timeout, and a few retries only for the answers that mean "try again
later" (408, 429, 503, 504), after the server's Retry-After or a short back-off; a refused connection or a timeout is
reported at once. What a user can fix (no server at the URL, an unknown study, a file
the server refuses) raises :class:`~mflag_monai.utils.errors.InputError` on one line naming the URL and the UID or
file and what to check.

Needs ``dicomweb-client`` (the ``monailabel`` extra); it is imported by the functions, not by this module.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..utils.errors import InputError
from ..utils.io import atomic_write

if TYPE_CHECKING:
    from dicomweb_client.api import DICOMwebClient
    from pydicom.dataset import Dataset

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "INSTANCE_FIELDS",
    "fetch_instances",
    "find_instances",
    "store_instances",
]

logger = logging.getLogger(__name__)

#: ``(connect, read)`` seconds for each HTTP request; a number sets both.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 120.0)
#: Extra attempts for a request the server answers with 408, 429, 503 or 504 (a refused connection or a timeout is
#: not retried: it is reported at once).
DEFAULT_RETRIES = 2
#: The attributes :func:`find_instances` returns for each instance, as plain strings.
INSTANCE_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Modality")

# A UID is digits and dots, at most 64 characters (PS3.5 9.1); checking it also keeps server answers out of file paths.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# The answers that mean "busy, ask again", and the longest wait between two attempts (seconds)
_BUSY = frozenset({408, 429, 503, 504})
_MAX_WAIT = 60.0
# "as stored": without a transfer syntax the server may transcode (dicomweb-client's default asks for Explicit VR LE)
_AS_STORED = (("application/dicom", "*"),)


def fetch_instances(
    url: str,
    study_uid: str,
    series_uid: str | None,
    output_dir: str | os.PathLike,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    headers: Mapping[str, str] | None = None,
) -> list[Path]:
    """Retrieve every instance of a study (or of one of its series) with WADO-RS into Part-10 files.

    Each instance is written, in the transfer syntax the server stored it in, as
    ``<output_dir>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (an existing file is replaced).

    Args:
        url: the DICOMweb base URL (e.g. ``http://pacs:8042/dicom-web``).
        study_uid: the StudyInstanceUID to fetch.
        series_uid: fetch only this SeriesInstanceUID of the study; ``None`` fetches the whole study.
        output_dir: the folder the files are written under.
        timeout: seconds to connect and to wait for each answer, ``(connect, read)`` or one number for both.
        retries: extra attempts when the server is busy (408, 429, 503, 504).
        headers: extra HTTP headers, e.g. ``{"Authorization": "Bearer ..."}``.

    Returns:
        The written files, sorted.

    Raises:
        InputError: the server cannot be reached, does not know the study or series, refuses the request, or a UID
            is malformed.
    """
    study_uid = _check_uid(study_uid, "StudyInstanceUID", url)
    if series_uid is not None:
        series_uid = _check_uid(series_uid, "SeriesInstanceUID", url)
    what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
    client = _client(url, timeout, retries, headers)
    output_dir = Path(output_dir).expanduser()
    written: set[Path] = set()
    missing = f"no {what} on the DICOMweb server; check the UIDs and that the study was sent to this server"
    with _request_errors(url, f"fetch {what}", not_found=missing):
        for media_types in (_AS_STORED, None):
            try:
                for ds in _retrieve(client, study_uid, series_uid, media_types):
                    written.add(_write_instance(ds, output_dir, study_uid, url))
                break
            except _http_error_type() as err:
                # 406: the server cannot send "as stored"; take its default transfer syntax instead of nothing
                if media_types is None or _status(err) != 406 or written:
                    raise
                logger.info("%s cannot send %s as stored (HTTP 406); fetching it in the server's default", url, what)
    if not written:  # a server may answer an unknown study with an empty message rather than 404
        raise InputError(missing, url)
    return sorted(written)


def store_instances(
    url: str,
    paths: Sequence[str | os.PathLike],
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Store Part-10 DICOM files on a DICOMweb server with STOW-RS, one request per file.

    Args:
        url: the DICOMweb base URL.
        paths: the files to store.
        timeout, retries, headers: as for :func:`fetch_instances`.

    Raises:
        InputError: a file is not a Part-10 DICOM file, the server cannot be reached, or it refuses a file; the
            message names the file and the URL. Files before the one at fault are stored.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    client = _client(url, timeout, retries, headers)
    for path in paths:
        path = Path(path)
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError as err:
            raise InputError("not a Part-10 DICOM file (no preamble and file meta); it cannot be stored", path) from err
        except (OSError, ValueError, EOFError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise InputError(f"unreadable DICOM file ({type(err).__name__}: {err}); it cannot be stored", path) from err
        with _request_errors(url, f"store {path}"):
            answer = client.store_instances([ds])
        failed = list(getattr(answer, "FailedSOPSequence", None) or [])
        if failed:
            reason = failed[0].get("FailureReason", "no reason given")
            code = f"0x{int(reason):04X}" if isinstance(reason, int) else str(reason)
            raise InputError(
                f"the DICOMweb server refused {path} (failure reason {code}); check the file and the server's log", url
            )


def find_instances(
    url: str,
    study_uid: str,
    modality: str | None = None,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    headers: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """The instances of a study the server holds (QIDO-RS), optionally only those of one modality (e.g. ``"SEG"``).

    Returns:
        One dict per instance with :data:`INSTANCE_FIELDS` as plain strings (``""`` when the server leaves one out),
        sorted by series and instance UID; an empty list when the study is unknown or has no such instance.

    Raises:
        InputError: the server cannot be reached or refuses the query, or the UID is malformed.
    """
    study_uid = _check_uid(study_uid, "StudyInstanceUID", url)
    client = _client(url, timeout, retries, headers)
    filters = {"Modality": modality} if modality else None
    with _request_errors(url, f"search study {study_uid}", not_found=None):
        try:
            found = client.search_for_instances(
                study_instance_uid=study_uid, fields=list(INSTANCE_FIELDS), search_filters=filters, get_remaining=True
            )
        except _http_error_type() as err:
            if _status(err) != 404:  # some servers answer a query on an unknown study with 404, not an empty list
                raise
            found = []
    rows = [{key: _json_value(item, key) for key in INSTANCE_FIELDS} for item in found or []]
    if modality:  # also here: a server may ignore a filter on a series attribute in an instance query
        rows = [row for row in rows if row["Modality"].upper() == modality.upper()]
    return sorted(rows, key=lambda row: (row["SeriesInstanceUID"], row["SOPInstanceUID"]))


def _client(
    url: str, timeout: float | tuple[float, float], retries: int, headers: Mapping[str, str] | None
) -> DICOMwebClient:
    """A client whose requests time out, and are retried only while the server answers "busy"."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    if not str(url).startswith(("http://", "https://")):
        raise InputError("expected a DICOMweb URL starting with http:// or https://", url)
    retries = max(int(retries), 0)

    class _BoundedSession(requests.Session):
        def request(self, method, url, **kwargs):  # type: ignore[override]
            kwargs.setdefault("timeout", timeout)  # dicomweb-client sets none: a silent server would hang forever
            # a streamed upload (a generator) cannot be sent twice
            replayable = isinstance(kwargs.get("data"), (bytes, str, type(None)))
            for attempt in range(retries + 1):
                response = super().request(method, url, **kwargs)
                if response.status_code not in _BUSY or attempt == retries or not replayable:
                    return response
                response.close()
                time.sleep(_retry_wait(response, attempt))
            return response

    client = DICOMwebClient(str(url).rstrip("/"), session=_BoundedSession(), headers=dict(headers or {}))
    # dicomweb-client's own retries also repeat refused connections and timeouts, with growing waits: off
    client.set_http_retry_params(retry=False)
    return client


def _retry_wait(response: object, attempt: int) -> float:
    """Seconds before the next attempt: the server's Retry-After (at most a minute), else 0.5, 1, 2, ... s."""
    value = getattr(response, "headers", {}).get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), _MAX_WAIT)
    except ValueError:  # absent, or an HTTP date: back off on our own
        return min(0.5 * 2**attempt, _MAX_WAIT)


def _retrieve(
    client: DICOMwebClient, study_uid: str, series_uid: str | None, media_types: tuple | None
) -> Iterator[Dataset]:
    """The instances as the server streams them (one in memory at a time)."""
    if series_uid is None:
        return client.iter_study(study_uid, media_types=media_types)
    return client.iter_series(study_uid, series_uid, media_types=media_types)


def _write_instance(ds: Dataset, output_dir: Path, study_uid: str, url: str) -> Path:
    """Write one retrieved data set as a Part-10 file under ``<study>/<series>/<instance>.dcm``; return its path."""
    import pydicom

    uids = {}
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        value = str(ds.get(key, "") or (study_uid if key == "StudyInstanceUID" else "")).strip()
        uids[key] = _check_uid(value, f"{key} of an instance the server sent", url)
    meta = getattr(ds, "file_meta", None)
    if meta is None or not meta.get("TransferSyntaxUID"):
        raise InputError(f"the server sent instance {uids['SOPInstanceUID']} without a transfer syntax", url)
    if not meta.get("MediaStorageSOPClassUID") and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if not meta.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = uids["SOPInstanceUID"]
    path = output_dir / uids["StudyInstanceUID"] / uids["SeriesInstanceUID"] / f"{uids['SOPInstanceUID']}.dcm"
    if int(pydicom.__version__.split(".")[0]) >= 3:
        atomic_write(path, lambda f: pydicom.dcmwrite(f, ds, enforce_file_format=True))
    else:  # pydicom 2.4: write_like_original=False writes the preamble and file meta
        atomic_write(path, lambda f: pydicom.dcmwrite(f, ds, write_like_original=False))
    return path


def _check_uid(value: str, name: str, url: str) -> str:
    value = str(value).strip()
    if not _UID.match(value) or len(value) > 64:
        raise InputError(f"{name} {value!r} is not a DICOM UID (digits and dots, at most 64 characters)", url)
    return value


def _json_value(item: Mapping[str, object], keyword: str) -> str:
    """The first value of ``keyword`` in a DICOM JSON object, as a string."""
    from pydicom.datadict import tag_for_keyword

    element = item.get(f"{tag_for_keyword(keyword):08X}")
    values = element.get("Value") if isinstance(element, Mapping) else None
    return str(values[0]) if values else ""


def _http_error_type() -> type[Exception]:
    import requests

    return requests.exceptions.HTTPError


def _status(err: BaseException) -> int | None:
    """The HTTP status of an ``HTTPError``."""
    return getattr(getattr(err, "response", None), "status_code", None)


def _short_reason(err: BaseException) -> str:
    """A few words for a connection failure; requests' own message is a nested repr of the whole URL pool."""
    text = str(err)
    errno_text = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno_text:
        return errno_text[-1].strip().rstrip(".")
    for words in ("timed out", "Connection refused", "Name or service not known", "Connection reset"):
        if words.lower() in text.lower():
            return words
    return type(err).__name__


@contextmanager
def _request_errors(url: str, action: str, not_found: str | None = "") -> Iterator[None]:
    """Turn the HTTP client's exceptions into one-line :class:`InputError` naming ``url`` and what was asked."""
    import requests

    try:
        yield
    except requests.exceptions.ConnectTimeout as err:
        raise InputError(
            f"cannot {action}: no answer from the DICOMweb server within the connect timeout; check the URL and "
            "that the server is running",
            url,
        ) from err
    except requests.exceptions.ConnectionError as err:
        raise InputError(
            f"cannot {action}: the DICOMweb server cannot be reached ({_short_reason(err)}); check the URL and that "
            "the server is running",
            url,
        ) from err
    except requests.exceptions.Timeout as err:
        raise InputError(
            f"cannot {action}: the DICOMweb server did not answer within the read timeout; check the server, or "
            "raise the timeout",
            url,
        ) from err
    except requests.exceptions.HTTPError as err:
        status = _status(err)
        reason = getattr(getattr(err, "response", None), "reason", "") or ""
        if status in _BUSY:
            raise InputError(
                f"cannot {action}: the DICOMweb server is busy (HTTP {status}); try again later", url
            ) from err
        if status == 404 and not_found:
            raise InputError(not_found, url) from err
        if status in (401, 403):
            hint = "check the credentials (headers)"
        elif status == 404:
            hint = "check the DICOMweb base URL (e.g. http://host:8042/dicom-web)"
        else:
            hint = "see the server's log"
        raise InputError(
            f"cannot {action}: the DICOMweb server answered HTTP {status} {reason}".rstrip() + f"; {hint}", url
        ) from err
    except requests.exceptions.RequestException as err:
        raise InputError(f"cannot {action}: {type(err).__name__}: {_short_reason(err)}", url) from err
