"""Finding a running ``qa serve`` for an index, so ``qa ask`` can skip the start-up.

Loading the model and the index costs seconds; answering costs ~150 ms.  ``qa serve``
writes ``<index>/server.json`` (its pid and URL) while it runs and removes it when it stops;
``qa ask`` sends the question there when the file names a live process that answers, or
to ``QA_SERVER_URL`` when that is set.  A file left by a killed server (its pid is gone,
or nothing listens on its port) is ignored, and the question is answered locally.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_FILE = "server.json"


@dataclass
class Found:
    url: str | None  # where to send questions, or None: answer locally
    why: str  # for --verbose: where the URL came from, or why there is none


def write_server_file(index_dir: Path, url: str) -> Path | None:
    """Written by ``qa serve`` before it starts listening; None when the index folder is not
    writable (a read-only mount): the server runs all the same, ``qa ask`` just loads locally."""
    path = Path(index_dir) / SERVER_FILE
    tmp = path.with_name(f".{SERVER_FILE}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": url, "started_at": time.time()}) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return path


def remove_server_file(index_dir: Path) -> None:
    """Only our own file: a second server on the same index may have replaced it."""
    path = Path(index_dir) / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _answers(url: str, timeout: float) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/") + "/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def find_server(index_dir: Path, server_url: str | None = None, timeout: float = 0.5) -> Found:
    """The URL of a server answering for ``index_dir`` (``server_url`` = QA_SERVER_URL first)."""
    if server_url:
        return Found(server_url.rstrip("/"), f"QA_SERVER_URL={server_url}")
    path = Path(index_dir) / SERVER_FILE
    try:
        info = json.loads(path.read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except FileNotFoundError:
        return Found(None, f"no running `qa serve` for {index_dir}/ (no {SERVER_FILE})")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Found(None, f"unreadable {path} ({exc}): ignored")
    if not _alive(pid):
        return Found(None, f"stale {path}: process {pid} is not running")
    if not _answers(url, timeout):
        return Found(None, f"{path}: process {pid} does not answer at {url}")
    return Found(url.rstrip("/"), f"`qa serve` (pid {pid}) found in {path}")
