"""Request bodies that arrive as a socket delivers them, for tests of what the server reads and when."""

from collections.abc import Iterable

BOUNDARY = "tl-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


class StreamedBody:
    """A body made on demand (a 300 MB upload costs no memory) that counts the bytes the server reads.

    `parts` are bytes, or an int n for n bytes of b"\\0" (a file's contents).
    """

    def __init__(self, parts: Iterable[bytes | int]):
        self.parts = list(parts)
        self.size = sum(p if isinstance(p, int) else len(p) for p in self.parts)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        wanted = self.size - self.bytes_read if size is None or size < 0 else size
        out, offset = [], 0
        for part in self.parts:
            length = part if isinstance(part, int) else len(part)
            start = max(self.bytes_read - offset, 0)
            if start < length and wanted > 0:
                take = min(length - start, wanted)
                out.append(bytes(take) if isinstance(part, int) else part[start : start + take])
                wanted -= take
                self.bytes_read += take
            offset += length
        return b"".join(out)

    def readline(self, size: int = -1) -> bytes:
        line = b""
        while (size < 0 or len(line) < size) and not line.endswith(b"\n"):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return line

    def environ(self, *, content_length: bool = True) -> dict:
        """WSGI environ entries for Django's test client (`client.generic(..., **body.environ())`)."""
        extra = {"wsgi.input": self, "CONTENT_TYPE": CONTENT_TYPE}
        if content_length:
            extra["CONTENT_LENGTH"] = str(self.size)
        else:
            extra.update(CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
        return extra


def multipart(
    fields: Iterable[tuple[str, str]] = (), files: Iterable[tuple[str, str, int | bytes]] = ()
) -> StreamedBody:
    """A multipart/form-data body: (name, value) fields, then (field, file name, size or bytes) files."""
    parts: list[bytes | int] = []
    for name, value in fields:
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for field, file_name, content in files:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{file_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        parts += [content, b"\r\n"]
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return StreamedBody(parts)
