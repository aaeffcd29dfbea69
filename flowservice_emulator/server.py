"""Run the emulator in-process, on a background thread with its own event loop (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from .app import create_app
from .config import BASE_PATH, IMS_TOKEN_PATH, EmulatorConfig


class EmulatorServer:
    """``with EmulatorServer() as server: httpx.get(server.flow_service_url + "/flowSpecs", ...)``."""

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._app: FastAPI | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def flow_service_url(self) -> str:
        return self.url + BASE_PATH

    @property
    def ims_token_url(self) -> str:
        return self.url + IMS_TOKEN_PATH

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator server is already running")
        # Bind here so that port 0 resolves to a real port before start() returns.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            # A port in use fails here (OSError, EADDRINUSE): never silently another port.
            sock.bind((self.host, self._requested_port))
            app = create_app(self.config)  # loads the state file, if any
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._app = app
        config = uvicorn.Config(
            app,
            log_level=self._log_level,
            # In-process use: leave logging to the host process. uvicorn's default log_config would
            # dictConfig the shared 'uvicorn*' loggers (own handlers, propagate off) for everyone.
            log_config=None,
            lifespan="off",
            backlog=4096,  # benchmarks open hundreds of connections at once
            timeout_graceful_shutdown=2,  # held "timeout" faults must not delay stop()
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"flowservice-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        if self._app is not None:  # the serving thread is gone: nothing else touches the state now
            self._app.state.emulator.close()
        self._server = self._thread = self._socket = self._app = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
