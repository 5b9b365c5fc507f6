"""Byte chunks to text lines, bounded.

Pipes deliver arbitrary chunks: a JSON line may arrive in pieces, split even inside a UTF-8
character. Lines are cut at ``\\n`` on the *byte* level and only complete lines are decoded,
so a split character is rebuilt for free. Invalid UTF-8 becomes U+FFFD, never an exception.
"""

from __future__ import annotations

# Bytes of an overlong line's start and end an error keeps, to show what it was.
EXCERPT_BYTES = 200


class LineTooLong(Exception):
    """A line grew past the limit before its newline arrived.

    It carries only small values (the limit, the size seen, the line's first and last
    `EXCERPT_BYTES`), and is raised after the framer dropped its buffer: an error kept
    for long (in a result, a log, a history) never keeps the megabytes of the line alive.
    """

    def __init__(self, limit: int, seen: int, head: bytes = b"", tail: bytes = b"") -> None:
        super().__init__(f"output line exceeds {limit} bytes (saw {seen} bytes without a newline)")
        self.limit = limit
        self.seen = seen
        self.head = bytes(head[:EXCERPT_BYTES])
        self.tail = bytes(tail[-EXCERPT_BYTES:]) if tail else b""


class LineFramer:
    """Incremental splitter of a byte stream into lines.

    Memory stays bounded by ``max_line_bytes`` plus one chunk: a line that exceeds the limit
    raises `LineTooLong` as soon as it is seen, rather than after buffering all of it.
    """

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes <= 0:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
        self._limit = max_line_bytes
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        """Add a chunk; return the lines it completed (without their ``\\n``)."""
        if not chunk:
            return []
        lines: list[str] = []
        start = 0
        # Search only the new chunk: the buffer is known to hold no newline.
        newline = chunk.find(b"\n")
        while newline != -1:
            piece = chunk[start:newline]
            if len(self._buffer) + len(piece) > self._limit:
                raise self._too_long(piece)
            if self._buffer:
                self._buffer += piece
                lines.append(self._buffer.decode("utf-8", errors="replace"))
                self._buffer.clear()
            else:
                lines.append(piece.decode("utf-8", errors="replace"))
            start = newline + 1
            newline = chunk.find(b"\n", start)
        rest = len(chunk) - start
        if len(self._buffer) + rest > self._limit:
            raise self._too_long(chunk[start:])
        self._buffer += chunk[start:]
        return lines

    def _too_long(self, piece: bytes) -> LineTooLong:
        """The error for a line past the limit, with the buffer already dropped (a new,
        empty one: ``clear()`` could keep the allocation)."""
        seen = len(self._buffer) + len(piece)
        head = bytes(self._buffer[:EXCERPT_BYTES]) if self._buffer else piece[:EXCERPT_BYTES]
        tail = (
            piece[-EXCERPT_BYTES:]
            if len(piece) >= EXCERPT_BYTES
            else (bytes(self._buffer[-EXCERPT_BYTES:]) + piece)[-EXCERPT_BYTES:]
        )
        self._buffer = bytearray()
        return LineTooLong(self._limit, seen, head, tail)

    def finish(self) -> list[str]:
        """End of stream: the last line if it had no trailing newline."""
        if not self._buffer:
            return []
        line = self._buffer.decode("utf-8", errors="replace")
        self._buffer.clear()
        return [line]

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete line held so far."""
        return len(self._buffer)
