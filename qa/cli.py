"""The ``qa`` command: ingest articles, ask questions, serve HTTP, inspect the index."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    help="Question answering with cited sources over Chinese Markdown articles (offline).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

IndexOpt = Annotated[Optional[Path], typer.Option("--index", "-i", help="Index folder [env QA_INDEX_DIR, default index/].")]
ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Embedding model: multilingual-e5-small (offline default) or any sentence-transformers name/folder [env QA_MODEL]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings(index: Path | None = None, model: str | None = None, **extra):
    from qa.config import Settings

    overrides = {k: v for k, v in {"index_dir": index, "model": model, **extra}.items() if v is not None}
    return Settings(**overrides)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def ingest(
    path: Annotated[Optional[Path], typer.Argument(help="Folder (or file) of articles [default: corpus/].")] = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    collection: Annotated[str, typer.Option("--collection", "-c", help="Name of this corpus inside the index.")] = "default",
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-chunk and re-embed everything.")] = False,
    chunk_size: Annotated[Optional[int], typer.Option(help="Target passage length in characters (default 600).")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another running ingest.")] = 0,
    follow_symlinks: Annotated[bool, typer.Option(help="Follow symlinks inside the corpus.")] = False,
    cache: Annotated[bool, typer.Option(help="Reuse vectors from the embedding cache in QA_CACHE_DIR.")] = True,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep running: re-ingest whenever files change (Ctrl-C stops).")] = False,
    debounce: Annotated[int, typer.Option(help="With --watch: group changes for up to this many milliseconds.", min=0)] = 1000,
    poll: Annotated[bool, typer.Option(help="With --watch: poll instead of inotify (network file systems).")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr: a bar on a terminal, a line every ~10 s otherwise.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every skipped file with its reason (--json always does).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Read articles, split them into passages, embed them and publish a new index generation.

    Re-running only re-embeds new and changed files; the served index is replaced atomically.
    Vectors reach the embedding cache as they are computed, so an interrupted run resumes.
    With --watch, runs again after every change (one JSON line per run with --json).
    """
    from qa.ingest import IngestLocked, ingest as run_ingest

    settings = _settings(index, model, chunk_size=chunk_size)
    root = path or settings.corpus_dir
    if watch:
        _watch(root, settings, collection, debounce, poll, follow_symlinks, cache, json_out)
        return
    try:
        report = run_ingest(
            root, settings, collection=collection, rebuild=rebuild, progress="auto" if progress else False,
            wait=wait, follow_symlinks=follow_symlinks, use_cache=cache,
        )
    except IngestLocked as exc:
        _fail(str(exc), 3)
    except (FileNotFoundError, OSError) as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    _print_ingest_report(report, settings, verbose)


def _watch(root, settings, collection, debounce, poll, follow_symlinks, cache, json_out) -> None:
    """`qa ingest --watch`: one summary per run until Ctrl-C or SIGTERM."""
    import signal
    import time

    from qa.watch import watch as run_watch

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    def on_run(outcome) -> None:
        stamp = time.strftime("%H:%M:%S")
        if isinstance(outcome, BaseException):
            if json_out:
                print(json.dumps({"error": str(outcome), "at": stamp}, ensure_ascii=False), flush=True)
            else:
                err.print(f"[bold red]{stamp} ingest failed:[/] {outcome} (retrying in a few seconds or on the next change)")
            return
        if json_out:
            print(json.dumps(outcome.to_dict(), ensure_ascii=False), flush=True)
        else:
            console.print(f"[dim]{stamp}[/]")
            _print_ingest_report(outcome, settings)
            sys.stdout.flush()

    if not json_out:
        err.print(f"watching {root}/ for changes (Ctrl-C to stop)")
    try:
        runs = run_watch(
            root, settings, collection=collection, debounce_ms=debounce, poll=poll,
            follow_symlinks=follow_symlinks, use_cache=cache, on_run=on_run,
        )
    except (FileNotFoundError, OSError) as exc:
        _fail(str(exc))
    if not json_out:
        err.print(f"stopped watching after {runs} run(s)")


def _print_ingest_report(report, settings, verbose: bool = True) -> None:
    from collections import Counter

    if report.rebuild_reason:
        console.print(f"[yellow]full rebuild:[/] {report.rebuild_reason}")
    console.print(
        f"[bold]{report.root}[/] → {settings.index_dir}/ ({report.generation or 'nothing published'})\n"
        f"  files: {len(report.indexed) + report.files_skipped} under the root: {len(report.indexed)} indexed "
        f"({len(report.added)} added, {len(report.changed)} changed, {report.unchanged} unchanged), "
        f"{report.files_skipped} skipped, {len(report.removed)} removed\n"
        f"  passages: {report.chunks_total} in index, {report.chunks_embedded} embedded, "
        f"{report.chunks_reused} reused ({report.chunks_cached} from cache)"
        + (f" ({report.chunks_per_second:.1f}/s)" if report.chunks_embedded else "")
        + f"\n  time: {report.seconds:.2f}s"
    )
    if verbose:
        for s in report.skipped:
            console.print(f"  [yellow]skipped[/] {s['path']}: {s['reason']}")
    elif report.skipped:
        import re

        # reasons without the per-file numbers, so that they group ("file too large (N bytes…)")
        reasons = Counter(re.sub(r"\s*\(.*\)$", "", s["reason"]) for s in report.skipped)
        console.print("  skipped: " + ", ".join(f"{n} {r}" for r, n in reasons.most_common()) + " (--verbose lists them)")
    for w in report.warnings:
        console.print(f"  [yellow]warning[/] {w['path']}: {w['warning']}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, e.g. 'k8s 和 Docker 是什么关系？'")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50, help="Passages to cite.")] = 5,
    collection: Annotated[Optional[str], typer.Option("--collection", "-c", help="Only this collection.")] = None,
    method: Annotated[str, typer.Option(help="hybrid | dense | lexical")] = "hybrid",
    local: Annotated[bool, typer.Option("--local", help="Load the index here even when a `qa serve` for it is running.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say on stderr whether a running server or this process answered, and why.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question from the indexed articles, with numbered sources.

    When a `qa serve` for the same index is running (it writes INDEX/server.json) or
    QA_SERVER_URL is set, the question is sent to it: no model or index load here.
    """
    settings = _settings(index, model)
    ans = None
    if not local and model is None:
        ans = _ask_server(question, top_k, method, collection, settings, verbose)
    elif verbose:
        err.print("answering here: " + ("--local" if local else "--model given (a server answers with its own model)"))
    if ans is None:
        # imported only here: a question sent to a server never loads numpy, FAISS or the model
        from qa.assistant import Assistant, QuestionError
        from qa.store import IndexMismatch, IndexNotFound

        try:
            bot = Assistant.open(settings=settings)
            ans = bot.ask(question, top_k=top_k, method=method, collection=collection)
        except (IndexNotFound, IndexMismatch, QuestionError) as exc:
            _fail(str(exc), 2)
    if json_out:
        print(ans.model_dump_json(indent=2))
        return
    from qa.render import render_terminal

    render_terminal(ans, console)


def _ask_server(question, top_k, method, collection, settings, verbose):
    """The Answer from a running server for this index, or None (then it is answered here)."""
    from qa.serverfile import find_server

    found = find_server(settings.index_dir, settings.server_url)
    if found.url is None:
        if verbose:
            err.print(f"loading the index here: {found.why}")
        return None
    import httpx

    from qa.models import Answer

    headers = {}
    if settings.api_keys is not None:
        keys = [k.strip() for k in settings.api_keys.get_secret_value().split(",") if k.strip()]
        if keys:
            headers["Authorization"] = f"Bearer {keys[0]}"
    body = {"question": question, "top_k": top_k, "method": method, "collection": collection}
    try:
        resp = httpx.post(found.url + "/ask", json=body, headers=headers, timeout=httpx.Timeout(120, connect=2))
    except httpx.HTTPError as exc:
        if verbose:
            err.print(f"loading the index here: the server at {found.url} failed ({exc})")
        return None
    if resp.status_code == 422:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text
        _fail(message, 2)
    if resp.status_code != 200:
        if verbose:
            err.print(f"loading the index here: the server at {found.url} answered HTTP {resp.status_code}")
        return None
    if verbose:
        err.print(f"answered by the server at {found.url} ({found.why})")
    return Answer.model_validate(resp.json())


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address [default 127.0.0.1].")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [default 8000].")] = None,
    index: IndexOpt = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (POST/GET /ask, /healthz, /docs) with uvicorn."""
    import os

    import uvicorn

    from qa.serverfile import remove_server_file, write_server_file

    settings = _settings(index)
    if index is not None:
        os.environ["QA_INDEX_DIR"] = str(index)
    bind, at = host or settings.host, port or settings.port
    # INDEX/server.json lets `qa ask` on this machine send its questions here
    local_host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    write_server_file(settings.index_dir, f"http://{local_host}:{at}")

    def on_term(signum, frame):
        # uvicorn shuts down gracefully, then re-raises the signal it caught, which would end
        # the process before any `finally`: remove the file here, then die of the signal as usual
        import signal

        remove_server_file(settings.index_dir)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    import signal

    signal.signal(signal.SIGTERM, on_term)
    try:
        uvicorn.run(
            "api.main:create_app", factory=True, host=bind, port=at,
            workers=workers, log_level="info",
        )
    finally:
        remove_server_file(settings.index_dir)


@app.command()
def stats(index: IndexOpt = None, json_out: JsonOpt = False) -> None:
    """Show what the index holds: documents, passages, model, size."""
    from qa.store import IndexNotFound, IndexReader

    settings = _settings(index)
    try:
        r = IndexReader(settings.index_dir)
    except IndexNotFound as exc:
        _fail(str(exc), 2)
    info = {"index": str(settings.index_dir), **r.info()}
    if json_out:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    for k, v in info.items():
        if k != "last_ingest":
            console.print(f"[bold]{k:>15}[/]: {v}")


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Path, typer.Argument(help="SQuAD-format JSON, e.g. ../shared/data/cmrc2018/cmrc2018_dev.json")],
    distractors: Annotated[Optional[Path], typer.Option(help="Folder of articles added to the same index as distractors.")] = None,
    unanswerable: Annotated[Optional[Path], typer.Option(help="SQuAD file whose questions are NOT indexed: they should abstain.")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: hybrid,dense,lexical (default: the production path).")] = "hybrid",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N questions (and N unanswerable).")] = None,
    model: ModelOpt = None,
    chunk_size: Annotated[Optional[int], typer.Option(help="Target passage length.")] = None,
    answer_chars: Annotated[Optional[int], typer.Option(help="Answer length budget.")] = None,
    keep_index: Annotated[Optional[Path], typer.Option(help="Build the evaluation index here and keep it.")] = None,
    answer_budgets: Annotated[str, typer.Option(help="Extra answer budgets to score too, e.g. 145 for chat-sized answers.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Measure passage hit@k/MRR, answer-hit, answer length, latency and abstention on a QA set."""
    from qa.evaluate import evaluate

    settings = _settings(None, model, chunk_size=chunk_size, answer_chars=answer_chars)
    if not dataset.exists():
        _fail(f"{dataset} not found")
    try:
        budgets = tuple(int(b) for b in answer_budgets.split(",") if b.strip())
    except ValueError:
        _fail(f"--answer-budgets takes comma-separated numbers of characters, not {answer_budgets!r}")
    if any(b < 40 for b in budgets):
        _fail("--answer-budgets: each budget must be at least 40 characters")
    result = evaluate(
        dataset, settings, methods=[m.strip() for m in methods.split(",") if m.strip()],
        distractors=distractors, unanswerable=unanswerable, limit=limit,
        progress=not json_out and sys.stderr.isatty(), keep_index=keep_index, answer_budgets=budgets,
    )
    if json_out:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    rows = result.get("methods") or {result["method"]: result}
    keys = ["hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "answer_hit", "answer_chars_mean",
            "latency_ms_p50", "latency_ms_p95", "refused_answerable", "abstained_unanswerable"]
    table = Table(title=f"{dataset.name}: {result['questions']} questions, {result['index']['passages']} passages")
    table.add_column("metric")
    for m in rows:
        table.add_column(m, justify="right")
    for k in keys:
        if any(k in r for r in rows.values()):
            table.add_row(k, *[str(r.get(k, "")) for r in rows.values()])
    for i, b in enumerate(budgets):
        table.add_row(f"answer_hit @{b} chars (mean)", *[
            f"{r['answer_budgets'][i]['answer_hit']} ({r['answer_budgets'][i]['answer_chars_mean']})" for r in rows.values()
        ])
    console.print(table)


@app.command()
def check(index: IndexOpt = None, json_out: JsonOpt = False) -> None:
    """Verify the served index: SQLite rows, lexical entries and FAISS ids are consistent."""
    from qa.check import check_index
    from qa.store import IndexNotFound

    settings = _settings(index)
    try:
        result = check_index(settings.index_dir)
    except IndexNotFound as exc:
        _fail(str(exc), 2)
    if json_out:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    elif result["ok"]:
        c = result["counts"]
        console.print(
            f"[green]ok[/] {result['generation']}: {c['documents']} documents, {c['chunks']} passages, "
            f"{c['lexical']} lexical entries, {c['vectors']} vectors"
        )
    else:
        for p in result["problems"]:
            err.print(f"[red]problem:[/] {p}")
    if not result["ok"]:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
