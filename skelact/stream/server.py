"""A small local web page for ``skelact live --serve``: the annotated stream and each person's top-k.

    GET /             the page (the stream, and the labels it polls from /state.json)
    GET /stream.mjpg  the annotated frames as MJPEG (multipart/x-mixed-replace)
    GET /frame.jpg    the latest annotated frame
    GET /state.json   {"frame", "time", "fps", "ended", "people": [{"person", "color", "text", "label", ...}]}

Standard library only (``http.server`` in a thread). It binds 127.0.0.1 by default; binding
0.0.0.0 shows the camera to everyone who can reach the machine, with no password.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from skelact.errors import SkelactError

__all__ = ["ServeError", "LiveServer", "parse_address", "is_loopback", "exposure_warning", "PAGE"]

_BOUNDARY = "skelactframe"


class ServeError(SkelactError):
    """The page cannot be served (a bad address, or a port in use); the message names ``--serve``."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port); the host defaults to 127.0.0.1.

    Raises:
        ServeError: Not an address with a port in 0-65535.
    """
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise ServeError(f"--serve {text[:80]!r}: expected HOST:PORT (e.g. 127.0.0.1:8000) with a port in 0-65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:  # a host name: loopback only if every address it resolves to is
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]).is_loopback for i in infos)


def exposure_warning(host: str, option: str) -> str | None:
    """The one-line warning for a bound address other machines can reach (None for loopback).

    ``host`` is the address actually bound (numeric, so no name lookup); ``option`` is what the
    user wrote after ``--serve``, which the warning quotes.
    """
    if is_loopback(str(host)):
        return None
    return (f"skelact: warning: --serve {option[:80]}: the page (the camera's annotated stream) is reachable "
            "from the network, with no authentication; use 127.0.0.1 to keep it on this machine")


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` whose errors in a request are a line, not a traceback per client."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, TimeoutError)):
            return  # a client that resets or drops its connection is normal on a network
        # Anything else is a bug of ours, but one request's failure must not spam the live output.
        print(f"skelact: warning: --serve: a request from {client_address[0]} failed "
              f"({type(e).__name__}: {str(e)[:100]})", file=sys.stderr, flush=True)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>skelact live</title>
<style>
body { background: #1e1e1e; color: #e8e8e8; font: 15px system-ui, sans-serif; margin: 16px; }
#wrap { display: flex; gap: 16px; align-items: flex-start; }
#stream { max-width: 75vw; background: #000; min-width: 320px; min-height: 180px; }
#people { list-style: none; padding: 0; margin: 0; min-width: 260px; }
#people li { margin: 0 0 12px 0; }
.who { font-weight: bold; } .top { color: #aaa; font-size: 13px; } .unknown { font-style: italic; }
#status { color: #999; font-size: 13px; margin-top: 8px; }
</style></head>
<body><h3>skelact live</h3>
<div id="wrap"><img id="stream" alt="annotated stream">
<div><ul id="people"><li>waiting for people...</li></ul><div id="status"></div></div></div>
<script>
const pct = p => Math.round(100 * p) + "%";
function render(s) {
  const ul = document.getElementById("people");
  ul.innerHTML = "";
  if (!s.people.length) { ul.innerHTML = "<li>nobody in view</li>"; }
  for (const p of s.people) {
    const li = document.createElement("li");
    const who = document.createElement("div");
    who.className = "who" + (p.unknown ? " unknown" : "");
    who.style.color = p.color;
    who.textContent = "person " + p.person + ": " + (p.text || "...");
    li.appendChild(who);
    const top = document.createElement("div");
    top.className = "top";
    top.textContent = (p.topk || []).map(t => t.label + " " + pct(t.probability)).join(", ");
    li.appendChild(top);
    ul.appendChild(li);
  }
  document.getElementById("status").textContent =
    (s.ended ? "stream ended; " : "") + "frame " + s.frame + ", " + s.fps.toFixed(1) + " frames/s";
}
async function poll() {
  try { const r = await fetch("/state.json", {cache: "no-store"}); render(await r.json()); } catch (e) {}
  setTimeout(poll, 250);
}
window.addEventListener("load", () => {
  document.getElementById("stream").src = "/stream.mjpg";  // after load: the page itself finishes loading
  poll();
});
</script></body></html>
"""


class LiveServer:
    """Serves the latest annotated frame and state from a background thread.

    Args:
        host: Address to bind (127.0.0.1: this machine only; 0.0.0.0: every network interface).
        port: TCP port (0 picks a free one; see :attr:`url`).
        quality: JPEG quality of the stream.

    Raises:
        ServeError: The address cannot be bound (e.g. the port is in use).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, quality: int = 80) -> None:
        self.quality = quality
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None  # latest annotated frame, BGR
        self._jpeg: tuple[int, bytes] | None = None  # (seq, bytes) cache of the latest encoding
        self._seq = 0
        self._state: dict[str, Any] = {"frame": 0, "time": 0.0, "fps": 0.0, "ended": False, "people": []}
        self._closing = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # no access log on stderr
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner._handle(self)

        try:
            self._httpd = _Server((host, port), Handler)
        except OSError as e:
            reason = e.strerror or str(e)
            raise ServeError(f"--serve {host}:{port}: cannot listen there ({reason})") from None
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="skelact serve", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = self.host if ":" not in str(self.host) else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    def publish(self, frame: np.ndarray, state: dict[str, Any]) -> None:
        """Make ``frame`` (uint8 [H, W, 3] BGR, not modified afterwards) and ``state`` the current ones."""
        with self._cond:
            self._frame, self._state = frame, state
            self._seq += 1
            self._cond.notify_all()

    def end(self) -> None:
        """Mark the stream as ended (the page says so); the last frame stays served."""
        with self._cond:
            self._state = {**self._state, "ended": True}
            self._cond.notify_all()

    def close(self) -> None:
        """Stop serving and close open streams."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _encoded(self) -> tuple[int, bytes] | None:
        """The latest frame as JPEG (encoded once per frame, whoever asks first)."""
        from skelact.viz.draw import import_cv2

        with self._cond:
            seq, frame, cached = self._seq, self._frame, self._jpeg
        if frame is None:
            return None
        if cached is not None and cached[0] == seq:
            return cached
        ok, buf = import_cv2().imencode(".jpg", frame, [1, self.quality])  # 1 = cv2.IMWRITE_JPEG_QUALITY
        if not ok:
            return None
        with self._cond:
            self._jpeg = (seq, buf.tobytes())
            return self._jpeg

    def _send(self, h: BaseHTTPRequestHandler, body: bytes, ctype: str) -> None:
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Cache-Control", "no-store")
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(h, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/state.json":
                with self._cond:
                    state = self._state
                self._send(h, json.dumps(state).encode(), "application/json")
            elif path == "/frame.jpg":
                jpeg = self._encoded()
                if jpeg is None:
                    h.send_error(503, "no frame yet")
                else:
                    self._send(h, jpeg[1], "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream(h)
            else:
                h.send_error(404)
        except ConnectionError:  # BrokenPipe, ConnectionReset, ConnectionAborted
            pass  # the browser went away

    def _stream(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        h.send_header("Cache-Control", "no-store")
        h.end_headers()
        last = -1

        def ready() -> bool:
            return self._closing or (self._seq != last and self._frame is not None)

        while True:
            with self._cond:
                self._cond.wait_for(ready, timeout=1.0)
                if self._closing:
                    return
                if self._seq == last or self._frame is None:
                    continue
            jpeg = self._encoded()
            if jpeg is None:
                continue
            last = jpeg[0]
            h.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg[1])}\r\n\r\n"
                          .encode() + jpeg[1] + b"\r\n")
            h.wfile.flush()
