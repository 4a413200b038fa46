"""Binding the server's address before anything loads: a port in use is one line, not a model load and a crash."""

from __future__ import annotations

import errno
import socket

from ..errors import AddressError

REASONS = {errno.EADDRINUSE: "the address is already in use (another server on that port?)",
           errno.EADDRNOTAVAIL: "that address is not one of this machine's",
           errno.EACCES: "permission denied (ports below 1024 need privileges)"}


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), ready for the server to listen on; `AddressError` (exit status 4)
    naming host, port and the fix when it cannot be bound.

    Example:
    >>> sock = bind("127.0.0.1", 0)  # doctest: +SKIP
    >>> sock.getsockname()[1] > 0  # doctest: +SKIP
    True
    """
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise AddressError(f"Cannot serve on {host}:{port}: the host name does not resolve ({exc.strerror}). "
                           "Pass --host 127.0.0.1 (this machine) or an address of this machine.") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        reason = REASONS.get(exc.errno, exc.strerror or str(exc))
        shown = f"[{host}]" if ":" in host else host
        raise AddressError(f"Cannot serve on {shown}:{port}: {reason}. Pick another --port, or stop what uses "
                           "it.") from None
    sock.set_inheritable(True)
    return sock
