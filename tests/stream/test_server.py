"""`live --serve`: a client that resets its connection mid-request costs nothing on stderr (item 11), and
a bind address other machines can reach gets a one-line warning (item 18) (issue 27)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from skelact.cli import main

cv2 = pytest.importorskip("cv2")
REPO = Path(__file__).resolve().parents[2]

_RESETS = r"""
import socket, struct, sys, time, urllib.request
from skelact.stream.server import LiveServer
server = LiveServer("127.0.0.1", 0)
for request in (b"GET / HTT\r\n\r\n", b"GET / HTTP/1.1\r\n", b"GET /stream.mjpg HTTP/1.1\r\n\r\n", b"\x16\x03\x01"):
    for _ in range(5):
        c = socket.create_connection(("127.0.0.1", server.port))
        c.sendall(request)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        c.close()
time.sleep(1.0)
# and it still serves
page = urllib.request.urlopen(server.url, timeout=5).read()
server.close()
print("served", len(page))
"""


def test_reset_clients_print_nothing() -> None:
    """20 clients that send a bad, partial or good request line and then reset: no traceback, no line,
    and the page is still served afterwards. In a child process: the server's threads write to the
    real stderr."""
    proc = subprocess.run([sys.executable, "-c", _RESETS], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("served ") and int(proc.stdout.split()[1]) > 100
    assert proc.stderr == "", proc.stderr[-2000:]


def test_request_failure_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Another error in a request thread (here: a failing handler) is one warning line, not a traceback."""
    from skelact.stream.server import LiveServer

    server = LiveServer("127.0.0.1", 0)
    try:
        def fail(h: object) -> None:
            raise ValueError("boom")

        server._handle = fail  # type: ignore[method-assign]
        with pytest.raises(OSError):  # the server closed the connection
            urllib.request.urlopen(server.url, timeout=5).read()
        time.sleep(0.2)
    finally:
        server.close()
    err = capsys.readouterr().err
    assert err == "skelact: warning: --serve: a request from 127.0.0.1 failed (ValueError: boom)\n", err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-frame blank video: `live` runs to its end in a second (nobody in view)."""
    from videos import write_video

    return write_video(tmp_path_factory.mktemp("serve") / "blank.avi", [np.zeros((96, 128, 3), np.uint8)] * 6)


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False), ("localhost", False)])
def test_network_bind_warns(clip: Path, models_root: Path, host: str, warned: bool,
                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ai_edge_litert")
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["live", "--source", str(clip), "--serve", f"{host}:{port}", "--quiet",
                 "--pose-model", str(models_root / "movenet_multipose_lightning_f16.tflite")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("skelact: warning:")]
    if warned:
        assert warnings == [f"skelact: warning: --serve {host}:{port}: the page (the camera's annotated stream) "
                            "is reachable from the network, with no authentication; use 127.0.0.1 to keep it on "
                            "this machine"], err
    else:
        assert warnings == [], err
    assert "Traceback" not in err


def test_is_loopback() -> None:
    from skelact.stream.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.5")
    assert not is_loopback("10.0.0.1")
