"""Serve an ASGI app with uvicorn on a real port, in a background thread or in the foreground.

Used for the notification receiver (``fhir-pa listen``, ``fhir-pa track --listen``) and by the sandbox payer.
The socket is bound here, before uvicorn starts, so ``port=0`` yields the port actually bound with no race;
:meth:`AppServer.start` returns only once the server accepts connections.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn

from fhir_pa.errors import ConfigurationError

_START_TIMEOUT = 10.0


class AppServer:
    """One ASGI app on ``host:port`` (port 0: any free port); a sync or async context manager."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str = "fhir-pa",
                 log_config: Mapping[str, Any] | None = None, log_level: str = "warning",
                 lifespan: Literal["on", "off"] = "off") -> None:
        self.app = app
        self._lifespan = lifespan
        self.host = host
        self.name = name
        self._requested_port = port
        self._log_config = log_config
        self._log_level = log_level
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"the {self.name} server has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Accepted sockets inherit this: without it, a response written in two parts (headers, body) waits
            # out the peer's delayed ACK, about 40 ms per exchange on loopback.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
            self._port = int(sock.getsockname()[1])
        except OSError as exc:
            sock.close()
            raise ConfigurationError(f"cannot listen on {self.host}:{self._requested_port}: "
                                     f"{exc.strerror or exc}") from exc
        return sock

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(self.app, lifespan=self._lifespan, log_config=dict(self._log_config)
                                if self._log_config is not None else None, log_level=self._log_level,
                                access_log=self._log_config is not None)
        return uvicorn.Server(config)

    def start(self) -> Self:
        """Start serving in a background thread; return once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} server is already running")
        self._socket = self._bind()
        self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(f"the {self.name} server did not start")
            time.sleep(0.005)
        with socket.create_connection((self.host, self.port), timeout=_START_TIMEOUT):
            pass
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port (finishing requests in flight first, for up to ``timeout`` s)."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout)
        self.stopped()
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def stopped(self) -> None:
        """Hook run once serving has ended (after a forced exit too); subclasses release what the app holds."""

    def serve_forever(self, ready: Callable[[Self], None] | None = None) -> None:
        """Serve in this thread until interrupted (Ctrl-C / SIGTERM); ``ready`` runs once the port is bound."""
        self._socket = self._bind()
        self._server = self._uvicorn()
        if ready is not None:
            ready(self)
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self.stopped()
            self._socket.close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        """Async use: the server still runs in its own thread, so the caller's event loop stays free."""
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)
