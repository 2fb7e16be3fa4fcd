"""Downloads into the persistent cache, through pooch: streamed, verified, renamed into place.

pooch (the scientific Python standard for cached, hashed downloads; requests underneath)
streams each download into a temporary file beside the destination, checks a pinned SHA-256,
and only then renames the file into place; a dropped connection, a body shorter than its
`Content-Length` or a hash mismatch leaves nothing behind. What pooch does not do is added
here: each completed download records its SHA-256 in `NAME.sha256` beside it, and a cached
file is re-hashed against that record (or the pin) before it is reused, so a truncated or
altered file is downloaded again (pooch alone reuses whatever file has the name when no hash
is pinned); `file://` URLs and plain local paths are copied through the same
temporary-file-and-verify step without a socket; the errors of requests and pooch become a
DownloadError that says what failed and what to do. pooch and requests come with the `export`
extra and are imported on the first download.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from tqdm.std import tqdm

from semdict_onnx._atomic import write_text_atomic
from semdict_onnx._progress import progress_bar
from semdict_onnx.errors import DownloadError

from ._errors import export_extra_needed

CHUNK_SIZE = 1 << 20
TIMEOUT_S = 60.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RETRY = "check the address and your network connection, then try again"

# pooch's downloader protocol: (url, temporary output file, Pooch instance or None).
Downloader = Callable[[str, str, object], None]


def _pooch() -> ModuleType:
    """pooch, or ExportDependencyError saying to install the export extra."""
    with export_extra_needed():
        import pooch
    return pooch


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits."""
    return _pooch().file_hash(os.fspath(path), alg="sha256")


def normalize_sha256(value: str) -> str:
    """`value` as 64 lowercase hex digits, or a DownloadError saying what a hash looks like."""
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise DownloadError(
            f"{value!r} is not a SHA-256: expected 64 hexadecimal digits, "
            "as printed by a previous export or by `sha256sum FILE`"
        )
    return digest


def _local_source(url: str) -> Path | None:
    """The file a `file://` URL or a plain path names; None for http(s) URLs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    return Path(url).expanduser()


def _copier(source: Path) -> Downloader:
    """A pooch downloader that copies a local file: no network."""

    def copy(url: str, output_file: str, pooch: object) -> None:
        shutil.copyfile(source, output_file)

    return copy


@contextlib.contextmanager
def _quiet(pooch: ModuleType) -> Iterator[None]:
    """pooch's INFO lines (what it fetches, the hash) off; the progress bar says enough."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _progress_bar(name: str) -> tqdm:
    """A byte-count bar on stderr for pooch to drive.

    pooch tests the bar's truth before it sets the total (a tqdm without a total has none), so
    it starts with a total of 1.
    """
    return progress_bar(
        total=1, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr
    )


def _cause(exc: BaseException) -> str:
    """The innermost message of a requests error, without the wrappers that repeat it."""
    while True:
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args:
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            return str(inner) if isinstance(inner, str) else str(exc)
        exc = inner


def _checksum_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Fetch `url` (http, https, file:// or a local path) to `dest`; verify `sha256` if given.

    Whatever was at `dest` is replaced: afterwards it holds the complete, verified download
    and its recorded hash, or nothing at all.
    """
    pooch = _pooch()
    with export_extra_needed():
        import requests
    dest = Path(dest)
    expected = normalize_sha256(sha256) if sha256 else None
    dest.unlink(missing_ok=True)  # else pooch would keep it instead of downloading
    _checksum_path(dest).unlink(missing_ok=True)
    source = _local_source(url)
    bar = _progress_bar(dest.name) if progress and source is None else None
    if source is not None:
        downloader = _copier(source)
    else:
        downloader = pooch.HTTPDownloader(
            progressbar=bar or False, chunk_size=CHUNK_SIZE, timeout=TIMEOUT_S
        )
    try:
        with _quiet(pooch):
            pooch.retrieve(url, expected, fname=dest.name, path=dest.parent, downloader=downloader)
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        reason = exc.response.reason if exc.response is not None else exc
        raise DownloadError(f"could not download {url}: HTTP {status} {reason}; {_RETRY}") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise DownloadError(
            f"the download of {url} was cut short ({_cause(exc)}); nothing was kept; {_RETRY}"
        ) from exc
    except requests.RequestException as exc:
        raise DownloadError(f"could not download {url}: {_cause(exc)}; {_RETRY}") from exc
    except OSError as exc:
        raise DownloadError(f"could not download {url}: {exc}; {_RETRY}") from exc
    except ValueError as exc:  # pooch's hash check: the only ValueError left
        raise DownloadError(
            f"{url} does not have the expected SHA-256 ({exc}); the file was discarded. Try "
            "again; if the file changed on purpose, check where it comes from and pin the new "
            "hash"
        ) from exc
    finally:
        if bar is not None:
            bar.close()
    dest.chmod(0o644)  # as every other file written here (pooch's temporary file is 0600)
    write_text_atomic(_checksum_path(dest), f"{expected or sha256_of(dest)}  {dest.name}\n")
    return dest


def cached_download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    progress: bool = True,
) -> tuple[Path, bool]:
    """`dest` if it is already there and verified, else `download()` it; says which.

    A cached file is reused only when its SHA-256 matches `sha256` if given, else the hash
    recorded when it was downloaded. Returns (path, reused).
    """
    dest = Path(dest)
    expected = normalize_sha256(sha256) if sha256 else None
    wanted = expected or _recorded_sha256(dest)
    if dest.is_file() and wanted and sha256_of(dest) == wanted:
        return dest, True
    return download(url, dest, sha256=expected, progress=progress), False


def _recorded_sha256(dest: Path) -> str | None:
    """The hash written beside `dest` when it was downloaded, if any."""
    try:
        text = _checksum_path(dest).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return text[0] if text and _SHA256.fullmatch(text[0]) else None
