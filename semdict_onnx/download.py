"""Downloads into the persistent cache: streamed to a temporary file, checked, renamed into place.

A download appears under its name complete and verified, or not at all: a dropped
connection, a short body or a SHA-256 mismatch leaves nothing behind. Each completed
download records its SHA-256 in a `NAME.sha256` file beside it, so a cached file is
re-verified before it is reused. `file://` URLs and plain local paths work without network.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ._atomic import atomic_write, write_text_atomic
from .errors import DownloadError

CHUNK_SIZE = 1 << 20
TIMEOUT_S = 60.0
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_sha256(value: str) -> str:
    """`value` as 64 lowercase hex digits, or a DownloadError saying what a hash looks like."""
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise DownloadError(
            f"{value!r} is not a SHA-256: expected 64 hexadecimal digits, "
            "as printed by a previous export or by `sha256sum FILE`"
        )
    return digest


def _as_url(source: str) -> str:
    """`source` as a URL: plain local paths become file:// URLs."""
    if urllib.parse.urlsplit(source).scheme in ("http", "https", "file"):
        return source
    return Path(source).expanduser().resolve().as_uri()


def _checksum_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Fetch `url` (http, https, file:// or a local path) to `dest`; verify `sha256` if given."""
    dest = Path(dest)
    expected = normalize_sha256(sha256) if sha256 else None
    source = _as_url(url)
    retry = "check the address and your network connection, then try again"
    try:
        response = urllib.request.urlopen(source, timeout=TIMEOUT_S)  # noqa: S310
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}; {retry}"
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not download {url}: {reason}; {retry}") from exc
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest = hashlib.sha256()
        received = 0
        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
            file=sys.stderr,
        )
        try:
            with bar, atomic_write(dest, "wb") as handle:
                while chunk := response.read(CHUNK_SIZE):
                    handle.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                if total is not None and received != total:
                    raise DownloadError(
                        f"the download of {url} was cut short: {received} of {total} bytes "
                        f"arrived; nothing was kept; {retry}"
                    )
                actual = digest.hexdigest()
                if expected and actual != expected:
                    raise DownloadError(
                        f"{url} does not have the expected SHA-256 (expected {expected}, got "
                        f"{actual}); the file was discarded. Try again; if the file changed on "
                        "purpose, check where it comes from and pin the new hash"
                    )
        except DownloadError:
            raise
        except http.client.IncompleteRead as exc:
            raise DownloadError(
                f"the download of {url} was cut short after {received} bytes "
                f"({exc}); nothing was kept; {retry}"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"the download of {url} failed after {received} bytes ({exc}); "
                f"nothing was kept; {retry}"
            ) from exc
    write_text_atomic(_checksum_path(dest), f"{actual}  {dest.name}\n")
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
    # Whatever is there cannot be trusted: remove it, so a failed download leaves nothing.
    dest.unlink(missing_ok=True)
    _checksum_path(dest).unlink(missing_ok=True)
    return download(url, dest, sha256=expected, progress=progress), False


def _recorded_sha256(dest: Path) -> str | None:
    """The hash written beside `dest` when it was downloaded, if any."""
    try:
        text = _checksum_path(dest).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return text[0] if text and _SHA256.fullmatch(text[0]) else None
