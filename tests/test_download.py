"""Downloads against a loopback HTTP server: progress, cache reuse, bad checksums, dropped
connections; directly through the export's download module (pooch underneath) and through
`python scripts/export.py`."""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import pytest
from conftest import ROOT, SCRIPTS

from semdict_onnx._metadata import METADATA_KEY, ModelInfo
from semdict_onnx.errors import DownloadError
from semdict_onnx.export._download import (
    cached_download,
    download,
    normalize_sha256,
    sha256_of,
)

pytestmark = pytest.mark.export  # pooch comes with the export extra

BODY = bytes(range(256)) * 4096 * 3  # 3 MiB: several chunks


@dataclass
class Route:
    """What the server answers for one path."""

    body: bytes
    status: int = 200
    drop_after: int | None = None  # announce the full length, send this many bytes, close


@dataclass
class LoopbackServer:
    """A bounded HTTP server on 127.0.0.1 that records the paths asked for."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        """The address of `path` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(server: LoopbackServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 30

        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            server.requests.append(self.path)
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404, "not here")
                return
            self.send_response(route.status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if route.drop_after is None:
                self.wfile.write(route.body)
                return
            self.wfile.write(route.body[: route.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A loopback server running in a daemon thread for one test."""
    state = LoopbackServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def names(folder: Path) -> list[str]:
    """Everything in `folder`, temporary files included."""
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_download_shows_progress_and_records_the_hash(server, tmp_path, capsys):
    server.routes["/model.pb"] = Route(BODY)
    digest = hashlib.sha256(BODY).hexdigest()
    dest = download(server.url("/model.pb"), tmp_path / "model.pb", sha256=digest.upper())
    assert dest.read_bytes() == BODY
    assert sha256_of(dest) == digest
    assert names(tmp_path) == ["model.pb", "model.pb.sha256"]
    assert (tmp_path / "model.pb.sha256").read_text().split()[0] == digest
    progress = capsys.readouterr().err
    assert "model.pb" in progress and "100%" in progress and "3.00M" in progress


def test_no_progress_bar_when_asked(server, tmp_path, capsys):
    server.routes["/model.pb"] = Route(BODY)
    download(server.url("/model.pb"), tmp_path / "model.pb", progress=False)
    assert capsys.readouterr().err == ""


def test_cached_file_is_reused_without_a_request(server, tmp_path):
    server.routes["/model.pb"] = Route(BODY)
    dest = tmp_path / "model.pb"
    assert cached_download(server.url("/model.pb"), dest, progress=False) == (dest, False)
    assert server.requests == ["/model.pb"]
    assert cached_download(server.url("/model.pb"), dest, progress=False) == (dest, True)
    pinned = hashlib.sha256(BODY).hexdigest()
    assert cached_download(server.url("/model.pb"), dest, pinned, progress=False)[1] is True
    assert server.requests == ["/model.pb"]


def test_damaged_cached_file_is_downloaded_again(server, tmp_path):
    server.routes["/model.pb"] = Route(BODY)
    dest = tmp_path / "model.pb"
    cached_download(server.url("/model.pb"), dest, progress=False)
    dest.write_bytes(BODY[:1000])  # truncated behind our back
    assert cached_download(server.url("/model.pb"), dest, progress=False) == (dest, False)
    assert dest.read_bytes() == BODY
    assert len(server.requests) == 2


def test_cached_file_without_a_recorded_hash_is_not_trusted(server, tmp_path):
    server.routes["/model.pb"] = Route(BODY)
    dest = tmp_path / "model.pb"
    dest.write_bytes(b"something else")
    assert cached_download(server.url("/model.pb"), dest, progress=False)[1] is False
    assert dest.read_bytes() == BODY


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/model.pb"] = Route(BODY)
    wrong = "ab" * 32
    with pytest.raises(DownloadError) as caught:
        download(server.url("/model.pb"), tmp_path / "model.pb", sha256=wrong, progress=False)
    message = str(caught.value)
    assert server.url("/model.pb") in message
    assert f"expected {wrong}" in message and hashlib.sha256(BODY).hexdigest() in message
    assert "discarded" in message
    assert names(tmp_path) == []


def test_checksum_mismatch_of_a_cached_file_removes_it(server, tmp_path):
    server.routes["/model.pb"] = Route(BODY)
    dest = tmp_path / "model.pb"
    cached_download(server.url("/model.pb"), dest, progress=False)
    with pytest.raises(DownloadError, match="expected SHA-256"):
        cached_download(server.url("/model.pb"), dest, sha256="cd" * 32, progress=False)
    assert names(tmp_path) == []


def test_dropped_connection_leaves_nothing(server, tmp_path):
    server.routes["/model.pb"] = Route(BODY, drop_after=len(BODY) // 2)
    with pytest.raises(DownloadError) as caught:
        download(server.url("/model.pb"), tmp_path / "model.pb", progress=False)
    message = str(caught.value)
    assert "cut short" in message and server.url("/model.pb") in message
    assert "try again" in message
    assert names(tmp_path) == []


def test_http_error_names_the_status(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        download(server.url("/missing.pb"), tmp_path / "model.pb", progress=False)
    assert server.url("/missing.pb") in str(caught.value)
    assert names(tmp_path) == []


def test_refused_connection_is_a_download_error(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/model.pb"
    with pytest.raises(DownloadError, match="could not download") as caught:
        download(url, tmp_path / "model.pb", progress=False)
    assert url in str(caught.value) and "network connection" in str(caught.value)
    assert names(tmp_path) == []


def test_local_paths_and_file_urls_need_no_network(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(BODY)
    digest = hashlib.sha256(BODY).hexdigest()
    first = download(str(source), tmp_path / "a" / "copy.bin", sha256=digest, progress=False)
    second = download(source.as_uri(), tmp_path / "b" / "copy.bin", progress=False)
    assert first.read_bytes() == BODY and second.read_bytes() == BODY
    with pytest.raises(DownloadError, match="could not download"):
        download(str(tmp_path / "absent.bin"), tmp_path / "c" / "copy.bin", progress=False)
    assert names(tmp_path / "c") == []


def test_malformed_hash_is_rejected():
    assert normalize_sha256(" " + "AB" * 32 + "\n") == "ab" * 32
    with pytest.raises(DownloadError, match="64 hexadecimal digits"):
        normalize_sha256("xyz")


# Through the export's download path (--url points it at the loopback server).


def run_export(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The export CLI in a subprocess."""
    command = [sys.executable, str(SCRIPTS / "export.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.fixture
def served_graph(server, lookalike_graphdef_path, labels_text) -> LoopbackServer:
    """The server offering a (lookalike) InceptionV1.pb and its labels."""
    server.routes["/modelzoo/InceptionV1.pb"] = Route(lookalike_graphdef_path.read_bytes())
    server.routes["/modelzoo/InceptionV1-labels.txt"] = Route(labels_text.encode())
    return server


def test_export_downloads_then_reuses_the_cache(served_graph, lookalike_graphdef_path, tmp_path):
    cache, output = tmp_path / "cache", tmp_path / "out" / "googlenet.onnx"
    args = (
        "--url",
        served_graph.url("/modelzoo/InceptionV1.pb"),
        "--labels",
        served_graph.url("/modelzoo/InceptionV1-labels.txt"),
        "--cache-dir",
        cache,
        "--output",
        output,
    )
    digest = sha256_of(lookalike_graphdef_path)
    first = run_export(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "InceptionV1.pb" in first.stderr and "100%" in first.stderr  # the progress bar
    assert f"source graph sha256: {digest}" in first.stdout
    assert f"--sha256 {digest}" in first.stdout  # how to pin it
    assert names(cache) == [
        "InceptionV1-labels.txt",
        "InceptionV1-labels.txt.sha256",
        "InceptionV1.pb",
        "InceptionV1.pb.sha256",
    ]
    assert sorted(served_graph.requests) == [
        "/modelzoo/InceptionV1-labels.txt",
        "/modelzoo/InceptionV1.pb",
    ]
    props = {prop.key: prop.value for prop in onnx.load(output).metadata_props}
    info = ModelInfo.from_json(props[METADATA_KEY])
    assert info.source_sha256 == digest and info.replica is False
    assert info.labels is not None and len(info.labels) == 1008

    served_graph.requests.clear()
    second = run_export(*args, "--sha256", digest)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"using cached {cache / 'InceptionV1.pb'}" in second.stdout
    assert served_graph.requests == []


def test_export_checksum_mismatch_leaves_nothing(served_graph, tmp_path):
    cache, output = tmp_path / "cache", tmp_path / "out" / "googlenet.onnx"
    result = run_export(
        "--url",
        served_graph.url("/modelzoo/InceptionV1.pb"),
        "--sha256",
        "0" * 64,
        "--cache-dir",
        cache,
        "--output",
        output,
    )
    assert result.returncode == 1
    assert "does not have the expected SHA-256" in result.stderr
    assert "No model was written" in result.stderr
    assert names(cache) == [] and not output.parent.exists()


def test_export_dropped_connection_leaves_nothing(served_graph, tmp_path):
    route = served_graph.routes["/modelzoo/InceptionV1.pb"]
    route.drop_after = len(route.body) // 3
    cache, output = tmp_path / "cache", tmp_path / "out" / "googlenet.onnx"
    url = served_graph.url("/modelzoo/InceptionV1.pb")
    result = run_export("--url", url, "--cache-dir", cache, "--output", output)
    assert result.returncode == 1
    assert "cut short" in result.stderr and url in result.stderr
    assert "--graphdef PATH" in result.stderr  # what to do without network
    assert names(cache) == [] and not output.parent.exists()
