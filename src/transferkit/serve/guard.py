"""What stands between a hostile client and the app: body size and read time limits, the Host check, safe headers,
and a header timeout in the HTTP protocol itself."""

from __future__ import annotations

import asyncio
import ipaddress
import json

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
# The upload page's policy: its own script and style only (no inline script runs from data), images from itself
# and data: URLs (Grad-CAM overlays), no framing by other sites.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SAFE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer")]


def is_loopback(host: str) -> bool:
    """Whether the server binds to this machine only (then the Host header must name it too)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host header values a loopback-bound server answers (None: any, when bound to other addresses)."""
    if not is_loopback(host):
        return None
    names = set(LOOPBACK_NAMES) | {host if ":" not in host else f"[{host}]"}
    return {n for n in names if not n.startswith("::")} | {f"{n}:{port}" for n in names if not n.startswith("::")}


class Guard:
    """ASGI middleware in front of the app.

    - A body over `max_body` bytes is refused with 413: by its Content-Length before anything is read, or, for
      a chunked body, as soon as the bytes received pass the limit — never read (or spooled to disk) whole.
    - A body that stalls for `read_timeout` seconds between chunks gets 408 and the connection is closed.
    - With `hosts` (a loopback-bound server), a request whose Host header names another host gets 400:
      a DNS-rebinding page cannot reach the server through a name it controls.
    - Every response carries `SAFE_HEADERS`; HTML responses also the page's Content-Security-Policy.

    Args:
        app: the ASGI app.
        max_body: bytes a request body may have.
        read_timeout: seconds of silence allowed while a body is being received.
        hosts: the Host header values answered, or None for any.
    """

    def __init__(self, app, *, max_body: int, read_timeout: float, hosts: set[str] | None = None):
        self.app = app
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if self.hosts is not None and host not in self.hosts:
            return await _error(send, 400, f"This server answers requests for this machine only (Host: "
                                           f"{sorted(self.hosts)[0]}); received Host: {host[:100]!r}.")
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return await _error(send, 400, "The Content-Length header is not a number.")
            if length > self.max_body:
                return await _error(send, 413, f"The request body is {length:,} bytes; this server takes at most "
                                               f"{self.max_body:,} (--max-upload-mb per file).", close=True)
        # a request without a body is complete at once; one with a body when its last chunk came in
        complete = declared in (None, b"0") and b"chunked" not in headers.get(b"transfer-encoding", b"")
        state = {"received": 0, "answered": False, "started": False, "complete": complete}

        async def guarded_receive():
            if state["answered"]:
                return {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except asyncio.TimeoutError:
                await answer(408, f"The request body stalled for {self.read_timeout:g} s; send it at once "
                                  "(--read-timeout).")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["complete"] = not message.get("more_body", False)
                if state["received"] > self.max_body:
                    await answer(413, f"The request body passed {self.max_body:,} bytes; this server takes at "
                                      "most that (--max-upload-mb per file).")
                    return {"type": "http.disconnect"}
            return message

        async def answer(status: int, message: str):
            if not state["started"]:
                state["answered"] = True
                await _error(send, status, message, close=True)

        async def guarded_send(message):
            if state["answered"]:
                return  # the app's own reply to the cut-off body: already answered
            if message["type"] == "http.response.start":
                state["started"] = True
                extra = list(SAFE_HEADERS)
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if content_type.startswith(b"text/html") and scope.get("path") == "/":
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                if not state["complete"]:  # answered before the body ended: close, rather than read the rest
                    extra.append((b"connection", b"close"))
                message = {**message, "headers": list(message.get("headers") or []) + extra}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not state["answered"]:
                raise  # a real error: the framework's handlers already answered it


async def _error(send, status: int, message: str, *, close: bool = False):
    """An error response in the server's one shape, `{"error": "..."}`."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *SAFE_HEADERS] + ([(b"connection", b"close")] if close else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def timed_h11(header_timeout: float):
    """uvicorn's HTTP/1.1 protocol with a deadline for request headers: a connection that opens and sends
    nothing, or sends headers that never end, is answered 408 and closed after `header_timeout` seconds (uvicorn
    itself waits forever; its keep-alive timer starts only after a first response)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        header_timer = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._arm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self):
            super().on_response_complete()
            self._disarm()  # idle now: uvicorn's keep-alive timeout takes over

        def _arm(self):
            # no request yet, or the last one answered and bytes of the next one's headers in: the clock runs
            waiting_for_headers = self.cycle is None or self.cycle.response_complete
            if not waiting_for_headers:
                self._disarm()
            elif self.header_timer is None and not self.transport.is_closing():
                self.header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self):
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _expire(self):
            self.header_timer = None
            if not self.transport.is_closing():
                body = json.dumps({"error": f"The request headers did not arrive within {header_timeout:g} s "
                                            "(--read-timeout)."}).encode()
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"connection: close\r\ncontent-length: " + str(len(body)).encode()
                                     + b"\r\n\r\n" + body)
                self.transport.close()

    return TimedH11Protocol
