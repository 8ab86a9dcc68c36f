"""HTTP range requests over bytes held in memory, so the browser's audio element can seek.

Chromium asks for `bytes=0-` first and then for the ranges it seeks to; Starlette answers
ranges only for files on disk, and a segment's audio is never written to one.
"""

from __future__ import annotations

import re

from starlette.responses import Response

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def ranged_response(data: bytes, range_header: str | None, media_type: str) -> Response:
    """The whole of `data` (200), the range asked for (206), or 416 for one beyond it."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    match = _RANGE.fullmatch((range_header or "").strip())
    if match is None or match.groups() == ("", ""):
        return Response(data, media_type=media_type, headers=headers)
    first, last = match.groups()
    size = len(data)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # a suffix: the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start > end or start >= size:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], 206, headers=headers, media_type=media_type)
