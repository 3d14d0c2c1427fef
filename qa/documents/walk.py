"""Finding the articles under a corpus root and reading their bytes.

Nothing is left out silently: every file that is not read (hidden, unsupported, a broken or
escaping symlink, unreadable) comes back as a ``Skipped`` with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from qa.documents.document import Skipped

SUFFIXES = (".md", ".markdown", ".mdx", ".txt")

# A Markdown article larger than this is almost certainly a generated dump or
# a mis-named binary; reading it would only slow ingestion down.
MAX_BYTES = 20 * 1024 * 1024


def relpath(path: Path, root: Path) -> str:
    if path == root:
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


def read_bytes(path: Path) -> bytes | str:
    """Raw bytes, or the Skipped reason when the file cannot be read."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return f"file too large ({size} bytes > {MAX_BYTES})"
        with open(path, "rb") as fh:
            return fh.read()
    except PermissionError:
        return "permission denied"
    except FileNotFoundError:
        return "file vanished before it could be read"
    except IsADirectoryError:
        return "is a folder, not a file"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"



def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _collect(
    folder: Path,
    rel: str,
    root_real: Path,
    ancestors: frozenset[Path],
    follow: bool,
    found: list[tuple[str, Path | None, str | None]],
) -> None:
    """Gather ``(relative path, path, skip reason)`` for every candidate below ``folder``."""
    try:
        entries = list(os.scandir(folder))
    except PermissionError:
        found.append((rel or ".", None, "permission denied: cannot list folder"))
        return
    except OSError as exc:
        found.append((rel or ".", None, f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        child = folder / entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # follows links; False for a dangling one
            is_file = entry.is_file()
        except OSError as exc:
            found.append((child_rel, None, f"cannot inspect: {exc.strerror or exc}"))
            continue
        # Nothing is left out silently: whatever is not read is reported with the reason.
        if _is_hidden(entry.name):
            if is_dir and not is_link:
                n = _count_files(child)
                found.append((child_rel + "/", None, f"hidden folder ({n} file{'s' if n != 1 else ''} not read)"))
            else:
                found.append((child_rel, None, "hidden file"))
            continue
        if not is_dir and not (_wanted(entry.name) and (is_file or is_link)):
            if is_link and not is_file:
                found.append((child_rel, None, "broken symlink"))
            elif not is_file:
                if os.path.lexists(child):  # gone since the listing: not under the root any more
                    found.append((child_rel, None, "not a regular file"))
            else:
                ext = Path(entry.name).suffix.lower() or "no extension"
                found.append((child_rel, None, f"unsupported file type ({ext})"))
            continue
        if is_link:
            if not follow:
                found.append((child_rel, None, "symlink not followed"))
                continue
            try:
                target = child.resolve(strict=True)
            except (OSError, RuntimeError):
                found.append((child_rel, None, "broken or looping symlink"))
                continue
            if not target.is_relative_to(root_real):
                found.append((child_rel, None, "symlink target outside the corpus root"))
                continue
            if is_dir and target in ancestors:
                found.append((child_rel, None, "symlink loop (points at a parent folder)"))
                continue
        if is_dir:
            real = child.resolve() if follow else child
            _collect(child, child_rel, root_real, ancestors | {real}, follow, found)
        else:
            found.append((child_rel, child, None))


def _count_files(folder: Path, cap: int = 1_000_000) -> int:
    """Files below a folder that is not read (a hidden one), for the report; links not followed."""
    n = 0
    for _, _, files in os.walk(folder):
        n += len(files)
        if n >= cap:
            break
    return n


def skipped_files(item: "Skipped") -> int:
    """How many files a Skipped entry stands for (a hidden folder counts its files)."""
    m = re.match(r"hidden folder \((\d+) file", item.reason)
    return int(m.group(1)) if m else 1


def iter_files(root: Path, follow_symlinks: bool = False) -> Iterator[tuple[Path, str] | Skipped]:
    """Yield ``(path, relative posix path)`` for every candidate article, or ``Skipped``.

    Split from ``iter_corpus`` so incremental ingestion can hash the bytes
    and only parse files that changed.  The whole tree is listed before
    anything is yielded, so the order is the plain sort of relative posix
    paths, independent of how the file system enumerates folders.  A missing
    ``root`` raises (that is a configuration error); anything wrong with an
    individual file or folder is yielded as ``Skipped``.
    """
    root = Path(root)
    if root.is_file():
        if _wanted(root.name):
            yield root, root.name
        else:
            yield Skipped(root.name, f"unsupported file type (expected one of {', '.join(SUFFIXES)})")
        return
    if not root.is_dir():
        raise FileNotFoundError(f"corpus root not found: {root}")
    root_real = root.resolve()
    found: list[tuple[str, Path | None, str | None]] = []
    _collect(root, "", root_real, frozenset({root_real}), follow_symlinks, found)
    found.sort(key=lambda item: item[0])
    for rel, path, reason in found:
        if reason is not None or path is None:
            yield Skipped(rel, reason or "unreadable")
        else:
            yield path, rel
