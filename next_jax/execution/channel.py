"""Length-prefixed JSON frames over a socket or pipe fd, with a size cap and a deadline.

Used on both sides: trusted code reading from a hostile child caps what it accepts and never blocks past its
deadline; the child side uses the same framing to read requests and write answers.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")


class ChannelClosed(EOFError):
    """The peer closed its end (it exited or was killed)."""


class ChannelTimeout(TimeoutError):
    """No complete frame before the deadline."""


class FrameTooLarge(ValueError):
    """The peer announced a frame over the cap."""


class OutputBuffer:
    """A child's stdout/stderr pipe, read while its channel waits: keeps the first ``cap`` bytes, drops the rest.

    No thread per child: whoever waits on the child's channel also drains this pipe, so a chatty child never
    blocks on a full pipe while it is being waited for.
    """

    def __init__(self, fd: int, cap: int) -> None:
        self.fd, self.cap, self.data = fd, cap, bytearray()

    def read_once(self) -> None:
        """One read (the pipe is readable); closes the pipe at end of file."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
        elif len(self.data) < self.cap:
            self.data += chunk[: self.cap - len(self.data)]

    def collect(self, timeout: float) -> None:
        """Read until end of file (every writer has exited) or ``timeout``."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        if self.fd >= 0:
            poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while self.fd >= 0:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return
            self.read_once()

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Channel:
    """Blocking frame I/O on one file descriptor (a socket end or a pipe end).

    ``output``: the peer's output pipe, drained whenever this side waits for a frame.
    """

    def __init__(self, fd: int, max_frame: int = 16 << 20, output: OutputBuffer | None = None) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self.output = output
        # Bytes read past the current frame: one read usually brings a whole small frame, header and body,
        # so a frame costs one poll and one read instead of two of each.
        self._buffer = bytearray()
        self._poller: select.poll | None = None

    def send(self, obj: Any) -> None:
        data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        self.send_bytes(data)

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(HEADER.pack(len(data)) + data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def recv(self, deadline: float | None = None) -> Any:
        data = self.recv_bytes(deadline)
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"undecodable frame: {type(e).__name__}") from None

    def recv_bytes(self, deadline: float | None = None) -> bytes:
        """One frame's body. A ``ChannelTimeout`` consumes nothing: a later call reads the same frame whole."""
        self._fill(HEADER.size, deadline)
        (size,) = HEADER.unpack_from(self._buffer)
        if size > self.max_frame:
            raise FrameTooLarge(f"frame of {size} bytes exceeds {self.max_frame}")
        self._fill(HEADER.size + size, deadline)
        data = bytes(self._buffer[HEADER.size:HEADER.size + size])
        del self._buffer[:HEADER.size + size]
        return data

    def _fill(self, n: int, deadline: float | None) -> None:
        """Read until the buffer holds at least ``n`` bytes."""
        buffer = self._buffer
        while len(buffer) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout()
                if self._poller is None:
                    self._poller = select.poll()  # poll, not select: fds may exceed FD_SETSIZE in a busy pool
                    self._poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
                    if self.output is not None and self.output.fd >= 0:
                        self._poller.register(self.output.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
                events = self._poller.poll(left * 1000)
                if not events:
                    raise ChannelTimeout()
                if self.output is not None and any(fd == self.output.fd for fd, _ in events):
                    output_fd = self.output.fd
                    self.output.read_once()
                    if self.output.fd < 0:
                        self._poller.unregister(output_fd)
                    if not any(fd == self.fd for fd, _ in events):
                        continue
            chunk = os.read(self.fd, max(n - len(buffer), 1 << 16))
            if not chunk:
                raise ChannelClosed()
            buffer += chunk

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
