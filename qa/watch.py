"""``qa ingest --watch``: keep the index in step with a folder of articles.

One ingest runs at start; after that every batch of file-system changes under
the corpus (inotify through ``watchfiles``, or polling with ``--poll`` for
network file systems and some containers) triggers another run of the ordinary
incremental ingest, so a run costs one read + hash per file plus the embedding
of what actually changed, and publishes a new generation atomically like any
``qa ingest``.

Debouncing: after the first change, changes are collected until the folder has
been quiet for ``QUIET_MS`` or ``debounce_ms`` has passed, whichever is first;
a burst (``git pull``, an editor's save-rename dance, a copied folder) becomes
one run.  A change that lands while a run is in progress is picked up by the
next batch, so the index always catches up with the last write.

Failures never end the watch: a run that fails (another ``qa ingest`` holds the
lock, the disk is full...) is reported and retried after ``RETRY_S`` seconds or
at the next change, whichever is first.  The served generation is untouched by a
failed run.  Ctrl-C (SIGINT) or SIGTERM stops cleanly: a run in progress is
abandoned (its temp folder removed, the lock released) and ``watch`` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Union

from qa.config import Settings
from qa.documents import SUFFIXES
from qa.ingest import IngestReport, ingest

log = logging.getLogger(__name__)

QUIET_MS = 200  # a batch is yielded once no change arrived for this long
RETRY_S = 5.0  # a failed run is retried after this many seconds even without a change
LOCK_WAIT_S = 30.0  # how long a run waits for another ingest holding the lock

Outcome = Union[IngestReport, BaseException]


def _is_relevant(path: str, root: Path, ignored: list[Path]) -> bool:
    """Article files and folders (a deleted folder removes its articles); no hidden
    files, editor swap files or the index itself."""
    p = Path(path)
    try:
        rel = p.relative_to(root)
    except ValueError:
        rel = p
    if any(part.startswith(".") for part in rel.parts):
        return False
    if any(p == d or d in p.parents for d in ignored):
        return False
    name = p.name
    if name.endswith(("~", ".swp", ".swx", ".tmp")):
        return False
    if name.lower().endswith(SUFFIXES):
        return True
    # folders (created, renamed, deleted: a deleted one no longer exists to test)
    return p.is_dir() or not p.exists()


def watch(
    root: Path,
    settings: Settings,
    index_dir: Path | None = None,
    collection: str = "default",
    debounce_ms: int = 1000,
    poll: bool = False,
    follow_symlinks: bool = False,
    use_cache: bool = True,
    on_run: Callable[[Outcome], None] | None = None,
    stop_event: threading.Event | None = None,
    max_runs: int | None = None,
    lock_wait: float = LOCK_WAIT_S,
) -> int:
    """Ingest ``root`` now and after every change until interrupted; returns the number of runs.

    ``on_run`` receives each run's ``IngestReport`` or the exception it failed with.
    ``stop_event`` (tests, embedding in a service) ends the loop like Ctrl-C does.
    """
    import watchfiles

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: give a folder of .md/.markdown/.mdx/.txt files")
    index_dir = Path(index_dir or settings.index_dir)
    watch_root = root if root.is_dir() else root.parent
    root_abs = watch_root.resolve()
    ignored = [index_dir.resolve(), Path(settings.cache_dir).resolve()]
    stop_event = stop_event or threading.Event()
    runs = 0

    def run_once() -> bool:
        nonlocal runs
        runs += 1
        try:
            outcome: Outcome = ingest(
                root, settings, index_dir=index_dir, collection=collection, wait=lock_wait,
                follow_symlinks=follow_symlinks, use_cache=use_cache,
            )
            ok = True
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # reported, retried; the served index is untouched
            log.debug("watch: ingest failed", exc_info=True)
            outcome, ok = exc, False
        if on_run:
            on_run(outcome)
        return ok

    try:
        ok = run_once()
        retry_at = None if ok else time.monotonic() + RETRY_S
        if max_runs is not None and runs >= max_runs:
            return runs
        for changes in watchfiles.watch(
            watch_root,
            watch_filter=lambda _change, path: _is_relevant(path, root_abs, ignored),
            debounce=max(debounce_ms, QUIET_MS),
            step=QUIET_MS,
            stop_event=stop_event,
            rust_timeout=1000,
            yield_on_timeout=True,
            force_polling=poll or None,
            poll_delay_ms=300,
            raise_interrupt=True,
        ):
            due = retry_at is not None and time.monotonic() >= retry_at
            if not changes and not due:
                continue
            if changes:
                log.info("watch: %d change(s), e.g. %s", len(changes), next(iter(changes))[1])
            ok = run_once()
            retry_at = None if ok else time.monotonic() + RETRY_S
            if max_runs is not None and runs >= max_runs:
                break
    except KeyboardInterrupt:
        log.info("watch: interrupted")
    return runs
