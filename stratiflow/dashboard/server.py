"""The live dashboard: a Starlette app over a :class:`Board` that background readers fill.

``GET /`` the page, ``GET /static/...`` its assets (bundled, no CDN), ``GET /api/snapshot``
the whole board, ``GET /api/events?since=SEQ`` server-sent events with the patches after
``SEQ``, ``GET /api/healthz`` whether the server is up.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stratiflow.dashboard.board import Board
from stratiflow.dashboard.health import FlinkHealth
from stratiflow.dashboard.page import live_page
from stratiflow.dashboard.sources import RunDirectory, TopicFollower, poll_forever

#: How often the server looks for new patches for a live page, and for new lines in files.
TICK_S = 0.25
FILE_POLL_S = 0.5
HEALTH_POLL_S = 2.0
KEEPALIVE_S = 15.0


@dataclass
class Dashboard:
    """A board, the lock its readers and the web handlers share, and the readers."""

    title: str
    board: Board = field(default_factory=Board)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    readers: list[threading.Thread] = field(default_factory=list)

    def add_reader(self, name: str, target: Callable[[], None]) -> None:
        self.readers.append(threading.Thread(target=target, name=name, daemon=True))

    def follow_run(self, path: Path) -> None:
        """Read a backtest's output directory, and keep reading what is appended."""
        run = RunDirectory(path)

        def poll() -> None:
            with self.lock:
                run.poll(self.board)

        self.add_reader("run-files", lambda: poll_forever(poll, self.stop, FILE_POLL_S, self._err))

    def follow_topics(self, follower: TopicFollower) -> None:
        self.add_reader("topics", lambda: follower.run(self.board, self.lock, self.stop))

    def follow_health(self, jobmanager: str) -> None:
        """Ask Flink's REST API at ``jobmanager`` for the job's health every few seconds."""
        rest = FlinkHealth(jobmanager)

        def poll() -> None:
            try:
                health = rest.poll()
            except OSError as exc:
                with self.lock:
                    self.board.set_source(
                        "flink", False, f"no Flink REST API at {rest.base}: {exc}"
                    )
                return
            with self.lock:
                self.board.set_source("flink", True, f"job health from {rest.base}")
                self.board.set_health(health)

        self.add_reader("health", lambda: poll_forever(poll, self.stop, HEALTH_POLL_S, self._err))

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def close(self) -> None:
        self.stop.set()
        for reader in self.readers:
            reader.join(timeout=5)

    def _err(self, message: str) -> None:
        with self.lock:
            self.board.set_source("dashboard", False, f"a reader failed: {message}")

    def app(self) -> Starlette:
        """The web app (the readers are started and stopped with it)."""
        static = resources.files("stratiflow.dashboard") / "static"

        async def page(request: Request) -> Response:
            return HTMLResponse(live_page(self.title))

        async def snapshot(request: Request) -> Response:
            with self.lock:
                data = json.dumps(self.board.snapshot())
            return Response(data, media_type="application/json")

        async def healthz(request: Request) -> Response:
            return JSONResponse({"ok": True, "seq": self.board.seq})

        async def events(request: Request) -> Response:
            try:
                since = int(request.query_params.get("since", "0"))
            except ValueError:
                return JSONResponse({"error": "since must be an integer"}, status_code=400)
            return StreamingResponse(
                self._stream(request, since),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self.start()
            try:
                yield
            finally:
                self.close()

        return Starlette(
            routes=[
                Route("/", page),
                Route("/api/snapshot", snapshot),
                Route("/api/events", events),
                Route("/api/healthz", healthz),
                Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
            ],
            lifespan=lifespan,
        )

    async def _stream(self, request: Request, since: int) -> AsyncIterator[str]:
        seq = since
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not self.stop.is_set():
            if await request.is_disconnected():
                return
            with self.lock:
                patches = self.board.patches_since(seq)
                current = self.board.seq
            if patches is None:  # fell too far behind: the page reloads the board
                patches = [{"kind": "reset", "seq": current}]
            if patches:
                seq = current
                quiet = 0.0
                yield f"data: {json.dumps({'patches': patches})}\n\n"
            else:
                quiet += TICK_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
            await asyncio.sleep(TICK_S)


def serve(dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve ``dashboard`` until interrupted (Ctrl-C stops it cleanly)."""
    import uvicorn

    config = uvicorn.Config(
        dashboard.app(),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    uvicorn.Server(config).run()
