"""A pseudo-terminal standing in for a serial port (simulators layer).

The simulator holds the master side; the slave side is symlinked at a configured path, so
the edge opens it with pyserial exactly like a real /dev/ttyUSB0. ``start`` / ``stop`` run a
server on it: a reader on the master side and the server's own task (logged if it crashes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from simulators.errors import SimulatorError

log = logging.getLogger(__name__)


class PtyLink:
    def __init__(self, link: Path | str, what: str) -> None:
        self.link = Path(link)
        self.what = what  # for error messages: "Modbus RTU", "a serial peripheral"
        self.master = -1
        self.slave = -1
        self.slave_name = ""
        self._task: asyncio.Task[None] | None = None

    def open(self) -> None:
        try:
            self.master, self.slave = os.openpty()
            tty.setraw(self.slave)  # no echo, no line editing: bytes pass unchanged
            os.set_blocking(self.master, False)
            self.slave_name = os.ttyname(self.slave)
            self._make_link()
        except OSError as exc:
            self._close_fds()
            raise SimulatorError(f"cannot serve {self.what} at {self.link}: {exc}") from exc
        except BaseException:
            self._close_fds()
            raise
        # The slave side stays open too, so the master never reads EIO between host sessions.

    def close(self) -> None:
        self._remove_link()
        self._close_fds()

    def start(self, on_readable: Callable[[], None], serve: Callable[[], Coroutine[Any, Any, None]],
              name: str) -> None:
        """Open the pty, watch its master side with ``on_readable`` and run ``serve()`` as a task."""
        self.open()
        asyncio.get_running_loop().add_reader(self.master, on_readable)
        self._task = asyncio.create_task(serve(), name=name)
        self._task.add_done_callback(self._report_crash)

    async def stop(self) -> None:
        """Cancel the server task, stop reading, close the pty and remove the link."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.master >= 0:
            asyncio.get_running_loop().remove_reader(self.master)
        self.close()

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s server on %s stopped", self.what, self.link, exc_info=task.exception())

    def _make_link(self) -> None:
        if self.link.is_symlink():
            self.link.unlink()  # left behind by a killed run
        elif self.link.exists():
            raise SimulatorError(f"{self.link} exists and is not a symlink; refusing to replace it")
        self.link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(self.slave_name, self.link)

    def _remove_link(self) -> None:
        with contextlib.suppress(OSError):
            if self.link.is_symlink() and os.readlink(self.link) == self.slave_name:
                self.link.unlink()

    def _close_fds(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1
