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


class Channel:
    """Blocking frame I/O on one file descriptor (a socket end or a pipe end)."""

    def __init__(self, fd: int, max_frame: int = 16 << 20) -> None:
        self.fd = fd
        self.max_frame = max_frame
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
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > self.max_frame:
            raise FrameTooLarge(f"frame of {size} bytes exceeds {self.max_frame}")
        return self._read_exact(size, deadline)

    def _read_exact(self, n: int, deadline: float | None) -> bytes:
        buffer = self._buffer
        while len(buffer) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout()
                if self._poller is None:
                    self._poller = select.poll()  # poll, not select: fds may exceed FD_SETSIZE in a busy pool
                    self._poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
                if not self._poller.poll(left * 1000):
                    raise ChannelTimeout()
            chunk = os.read(self.fd, max(n - len(buffer), 1 << 16))
            if not chunk:
                raise ChannelClosed()
            buffer += chunk
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
