"""Serve the explorer with uvicorn on a socket bound here, so that a busy port is one clear
error before anything starts, and `--port 0` can print the port the system chose."""

from __future__ import annotations

import errno
import socket
from ipaddress import ip_address

import uvicorn
from fastapi import FastAPI

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServeError(RuntimeError):
    """The app cannot start; the message is one line for the user."""


def is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or ServeError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ServeError(f"cannot listen on {host}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        why = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise ServeError(f"cannot listen on {host}:{port}: {why}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Run until Ctrl-C (uvicorn stops gracefully, then re-raises it as KeyboardInterrupt)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
