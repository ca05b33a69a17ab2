"""Files written whole or not at all."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and
    :func:`os.replace`, so no reader (another array task, a rerun) sees half a file. A
    file that already holds ``text`` is left as it is: Nipype hashes an input file by
    path and time stamp, so the nodes that read it stay cached."""
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
