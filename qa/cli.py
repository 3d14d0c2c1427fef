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
    from pydantic import ValidationError

    from qa.config import Settings, describe_error

    overrides = {k: v for k, v in {"index_dir": index, "model": model, **extra}.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # a bad QA_* value: say which and what is allowed, no traceback
        _fail("invalid settings: " + describe_error(exc))


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {_t(message)}")
    raise typer.Exit(code)


def _t(value) -> str:
    """Outside text (file names, reasons, titles) for rich: control characters shown as escapes
    (an ESC or a newline in a file name can neither colour the terminal nor forge a report
    line), and no [markup]. JSON output needs neither: json.dumps escapes them."""
    from rich.markup import escape

    from qa.safetext import printable

    return escape(printable(value))


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
    from qa.vectors.base import StoreUnavailable

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
    except StoreUnavailable as exc:  # QA_VECTOR_STORE=milvus: the local generation is built, Milvus is not
        _fail(f"{exc}; the index folder is up to date and the served Milvus alias untouched: run `qa ingest` "
              "again once Milvus answers (nothing is re-embedded)", 4)
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
    # a watcher started in the background by a non-interactive shell (`qa ingest --watch &` in a
    # script, nohup) inherits SIGINT as ignored: Ctrl-C / `kill -INT` must still stop it
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_run(outcome) -> None:
        stamp = time.strftime("%H:%M:%S")
        if isinstance(outcome, BaseException):
            if json_out:
                print(json.dumps({"error": str(outcome), "at": stamp}, ensure_ascii=False), flush=True)
            else:
                err.print(f"[bold red]{stamp} ingest failed:[/] {_t(outcome)} (retrying in a few seconds or on the next change)")
            return
        if json_out:
            print(json.dumps(outcome.to_dict(), ensure_ascii=False), flush=True)
        else:
            console.print(f"[dim]{stamp}[/]")
            _print_ingest_report(outcome, settings)
            sys.stdout.flush()

    if not json_out:
        err.print(f"watching {_t(root)}/ for changes (Ctrl-C to stop)")
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
        for other, n in sorted(report.also_rebuilt.items()):
            console.print(f"  kept collection {other}: re-read {n} file{'s' if n != 1 else ''} from where it was last ingested")
    console.print(
        f"[bold]{_t(report.root)}[/] → {_t(settings.index_dir)}/ ({report.generation or 'nothing published'})\n"
        f"  files: {len(report.indexed) + report.files_skipped} under the root: {len(report.indexed)} indexed "
        f"({len(report.added)} added, {len(report.changed)} changed, {report.unchanged} unchanged), "
        f"{report.files_skipped} skipped, {len(report.removed)} removed\n"
        f"  passages: {report.chunks_total} in index, {report.chunks_embedded} embedded, "
        f"{report.chunks_reused} reused ({report.chunks_cached} from cache)"
        + (f" ({report.chunks_per_second:.1f}/s)" if report.chunks_embedded else "")
        + f"\n  time: {report.seconds:.2f}s"
    )
    vs = report.vector_store  # QA_VECTOR_STORE=milvus
    if vs:
        console.print(
            f"  milvus: alias {vs['alias']} → {vs['collection']} "
            + (f"({vs['rows']} passages written in {vs['seconds']:.2f}s)" if vs["published"] else "(already served, nothing written)")
        )
    if verbose:
        for s in report.skipped:
            console.print(f"  [yellow]skipped[/] {_t(s['path'])}: {_t(s['reason'])}")
    elif report.skipped:
        import re

        # reasons without the per-file numbers, so that they group ("file too large (N bytes…)")
        reasons = Counter(re.sub(r"\s*\(.*\)$", "", s["reason"]) for s in report.skipped)
        console.print("  skipped: " + ", ".join(f"{n} {_t(r)}" for r, n in reasons.most_common()) + " (--verbose lists them)")
    for w in report.warnings:
        console.print(f"  [yellow]warning[/] {_t(w['path'])}: {_t(w['warning'])}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, e.g. 'k8s 和 Docker 是什么关系？'")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", min=1, max=50, help="Passages to cite [env QA_TOP_K, default 5].")] = None,
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
    from qa.limits import QuestionError, check_question

    try:  # refused here, before a model loads or a server is asked (the same rule they apply)
        check_question(question, settings.max_question_chars)
    except QuestionError as exc:
        _fail(str(exc), 2)
    ans = None
    if not local and model is None:
        ans = _ask_server(question, top_k, method, collection, settings, verbose)
    elif verbose:
        err.print("answering here: " + ("--local" if local else "--model given (a server answers with its own model)"))
    if ans is None:
        # imported only here: a question sent to a server never loads numpy, FAISS or the model
        from qa.assistant import Assistant, QuestionError
        from qa.store import IndexMismatch, IndexNotFound
        from qa.vectors.base import StoreUnavailable

        try:
            assistant = Assistant.open(settings=settings)
            ans = assistant.ask(question, top_k=top_k, method=method, collection=collection)
        except (IndexNotFound, IndexMismatch, QuestionError) as exc:
            _fail(str(exc), 2)
        except StoreUnavailable as exc:  # QA_VECTOR_STORE=milvus and Milvus does not answer
            _fail(str(exc), 3)
        from qa.questionlog import close_logs, open_log, record_answer

        record_answer(open_log(settings), assistant, ans, "cli")  # a server logs what it answers itself
        close_logs()
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

    from qa.responses import Answer

    headers = {}
    if settings.api_keys is not None:
        keys = [k.strip() for k in settings.api_keys.get_secret_value().split(",") if k.strip()]
        if keys:
            headers["Authorization"] = f"Bearer {keys[0]}"
    body = {"question": question, "method": method, "collection": collection}
    if top_k is not None:  # else the server's own QA_TOP_K
        body["top_k"] = top_k
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
def chat(
    index: IndexOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", min=1, max=50, help="Passages to cite [env QA_TOP_K, default 5].")] = None,
    collection: Annotated[Optional[str], typer.Option("--collection", "-c", help="Only this collection.")] = None,
    followup: Annotated[bool, typer.Option(help="Resolve follow-up questions against earlier turns.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Ask questions one after another in one conversation: follow-ups ("它怎么删除？") continue it.

    One question per line (readline editing and history when interactive); '/new' starts a new
    conversation, '/quit' or Ctrl-D ends. Questions can be piped in: `printf '什么是 Pod？\\n它有什么用？\\n' | qa chat`.
    With --json, prints one answer object per line.
    """
    from qa.assistant import Assistant, QuestionError
    from qa.conversations import ConversationStore
    from qa.render import render_terminal
    from qa.store import IndexMismatch, IndexNotFound

    settings = _settings(index, model, followup=followup)
    try:
        assistant = Assistant.open(settings=settings)
    except (IndexNotFound, IndexMismatch) as exc:
        _fail(str(exc), 2)
    # the CLI's conversation lives in this process only: nothing is written beside the index
    assistant._conversations = ConversationStore(":memory:", settings.conversation_ttl_s, settings.conversation_max_turns)
    interactive = sys.stdin.isatty()
    if interactive:
        _readline_history(settings.cache_dir / "chat_history")
        err.print("[dim]one question per line · /new starts a new conversation · /quit or Ctrl-D ends[/]")
    conv = assistant.conversation()
    while True:
        try:
            line = input("问> " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            err.print()
            break
        q = line.strip()
        if not q:
            continue
        if q in ("/quit", "/exit", "/q"):
            break
        if q == "/new":
            conv = assistant.conversation()
            if not json_out:
                console.print("[dim]— new conversation —[/]")
            continue
        try:
            ans = conv.ask(q, top_k=top_k, collection=collection)
        except QuestionError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            continue
        if json_out:
            print(ans.model_dump_json(), flush=True)
            continue
        if ans.searched:
            console.print(f"[dim]searched: {ans.searched}[/]")
        render_terminal(ans, console)
        console.print()


def _readline_history(path: Path) -> None:
    """Line editing and a history file for `qa chat` (readline is absent on some platforms)."""
    try:
        import atexit
        import readline
    except ImportError:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
    except OSError:
        return
    readline.set_history_length(1000)
    atexit.register(lambda: _save_history(readline, path))


def _save_history(readline, path: Path) -> None:
    try:
        readline.write_history_file(path)
    except OSError:
        pass


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address [default 127.0.0.1].")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [default 8000].")] = None,
    index: IndexOpt = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (POST/GET /ask, /healthz, /docs) with uvicorn.

    Request headers are bounded (QA_MAX_HEADER_BYTES, QA_HEADER_TIMEOUT_S) and X-Forwarded-For is
    believed only from QA_TRUSTED_PROXIES (nobody by default).
    """
    import os

    import uvicorn

    from api.server import uvicorn_options
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
        # header size and time limits, X-Forwarded-For only from QA_TRUSTED_PROXIES (api/server.py)
        uvicorn.run(
            "api.main:create_app", factory=True, host=bind, port=at,
            workers=workers, log_level="info", **uvicorn_options(settings),
        )
    finally:
        remove_server_file(settings.index_dir)


@app.command()
def stats(index: IndexOpt = None, json_out: JsonOpt = False) -> None:
    """Show what the index holds: documents, passages, model, size."""
    from qa.store import IndexNotFound
    from qa.vectors.base import StoreUnavailable
    from qa.vectors.factory import open_index

    settings = _settings(index)
    try:
        r = open_index(settings)  # QA_VECTOR_STORE: the index folder or Milvus
    except IndexNotFound as exc:
        _fail(str(exc), 2)
    except StoreUnavailable as exc:
        _fail(str(exc), 3)
    info = {"index": str(settings.index_dir), **r.info()}
    if json_out:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    for k, v in info.items():
        if k != "last_ingest":
            console.print(f"[bold]{k:>15}[/]: {_t(v)}")


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Path, typer.Argument(help="SQuAD-format JSON (e.g. ../shared/data/cmrc2018/cmrc2018_dev.json) or real-question JSONL (bench/data/real-questions.jsonl).")],
    distractors: Annotated[Optional[Path], typer.Option(help="SQuAD: folder of articles added to the same index as distractors.")] = None,
    unanswerable: Annotated[Optional[Path], typer.Option(help="SQuAD: file whose questions are NOT indexed: they should abstain.")] = None,
    corpus: Annotated[Optional[list[str]], typer.Option("--corpus", help="Real set: NAME=DIR for each corpus the set names (repeat), e.g. --corpus seed=corpus --corpus zhtech=../shared/data/zh-tech-corpus.")] = None,
    index: Annotated[Optional[Path], typer.Option("--index", "-i", help="Ask this existing index as is, read-only (nothing ingested): one with the real set's collections, or one an earlier --keep-index run built for the same SQuAD file.")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: hybrid,dense,lexical (default: the production path).")] = "hybrid",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N questions (and N unanswerable; real set: N of each kind).")] = None,
    model: ModelOpt = None,
    chunk_size: Annotated[Optional[int], typer.Option(help="Target passage length.")] = None,
    answer_chars: Annotated[Optional[int], typer.Option(help="Answer length budget.")] = None,
    keep_index: Annotated[Optional[Path], typer.Option(help="Build the evaluation index here and keep it (a later run with the same folder only ingests what changed).")] = None,
    answer_budgets: Annotated[str, typer.Option(help="Extra answer budgets to score too, e.g. 145 for chat-sized answers.")] = "",
    per_question: Annotated[bool, typer.Option("--per-question", help="Real set, with --json: keep every question's answer and facts in the output.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure passage hit@k/MRR, answer-hit, lead-sentence hit, answer-hit@80, meta openings,
    latency and abstention on a SQuAD set or a real-question set.

    Records that cannot be used (empty or over-long questions, answers not in their context,
    duplicate ids, malformed lines) are skipped and listed under `skipped`, never fatal.
    """
    from qa.evalsets import DatasetError
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
    if index is not None and keep_index is not None:
        _fail("--index asks an existing index as is; --keep-index builds one: give one of them")
    if index is not None and not index.is_dir():
        _fail(f"--index {index}: no such folder")
    corpora = {}
    for item in corpus or []:
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder.strip():
            _fail(f"--corpus takes NAME=DIR, not {item!r}")
        if not Path(folder).is_dir():
            _fail(f"--corpus {item}: {folder} is not a folder")
        corpora[name.strip()] = Path(folder)
    from qa.store import IndexMismatch, IndexNotFound

    try:
        result = evaluate(
            dataset, settings, methods=[m.strip() for m in methods.split(",") if m.strip()],
            distractors=distractors, unanswerable=unanswerable, limit=limit,
            progress=not json_out and sys.stderr.isatty(), keep_index=keep_index, answer_budgets=budgets,
            corpora=corpora, index=index,
        )
    except (DatasetError, IndexNotFound, IndexMismatch) as exc:
        _fail(str(exc), 1)
    rows = result.get("methods") or {result["method"]: result}
    if not per_question:
        for r in rows.values():
            r.pop("per_question", None)
    if json_out:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    keys = ["hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "file_hit@1", "answer_hit", "lead_sentence_hit",
            "answer_hit@80", "meta_first_sentence", "answer_chars_mean", "latency_ms_p50", "latency_ms_p95",
            "refused_answerable", "abstained_unanswerable", "stub_status", "stub_section_cited", "answers_given",
            "answers_with_diagram_source", "answers_with_lone_fence", "answers_with_dangling_colon"]
    passages = result["index"].get("passages")
    title = f"{dataset.name}: {result['questions']} questions"
    if result.get("format") == "real":
        title += f" (+{result['unanswerable_questions']} unanswerable, {result['stub_questions']} stub)"
    table = Table(title=f"{title}, {passages} passages")
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
    if result["skipped_count"]:
        reasons = ", ".join(f"{v} {k}" for k, v in result["skipped_by_reason"].items())
        console.print(f"[yellow]skipped {result['skipped_count']} record(s):[/] {reasons} (details under `skipped` in --json)")


@app.command()
def check(index: IndexOpt = None, json_out: JsonOpt = False) -> None:
    """Verify the served index: SQLite rows, lexical entries and FAISS ids are consistent."""
    from qa.check import check_index
    from qa.store import IndexNotFound

    settings = _settings(index)
    try:
        if settings.vector_store == "milvus":  # a replica may have no index folder: Milvus alone
            result = _check_with_milvus(settings)
        else:
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
            err.print(f"[red]problem:[/] {_t(p)}")
    for name in result.get("leftover_temp") or ():
        err.print(
            f"[yellow]warning:[/] {_t(settings.index_dir)}/{_t(name)} is left over from an interrupted ingest "
            "(not served; the next `qa ingest` removes it)"
        )
    if not result["ok"]:
        raise typer.Exit(1)


def _check_with_milvus(settings) -> dict:
    from qa.check import check_index, check_milvus
    from qa.store import current_generation
    from qa.vectors.base import StoreUnavailable

    try:
        m = check_milvus(settings)
    except StoreUnavailable as exc:
        _fail(str(exc), 3)
    if current_generation(settings.index_dir) is None:
        return {**m, "counts": {**m.get("counts", {}), "lexical": m.get("counts", {}).get("chunks", 0),
                                "vectors": m.get("counts", {}).get("chunks", 0)}, "milvus": m}
    result = check_index(settings.index_dir)
    result["milvus"] = m
    result["problems"] += [f"milvus: {p}" for p in m["problems"]]
    result["ok"] = result["ok"] and m["ok"]
    return result
# ---- the question log and the gap report (qa/questionlog.py, qa/gaps.py) ----------------------

log_app = typer.Typer(
    help="The question log (questions.sqlite beside the index): what is stored, purging.", no_args_is_help=True
)
app.add_typer(log_app, name="log")


def _open_log(index: Path | None):
    from qa.questionlog import db_path, open_log

    settings = _settings(index)
    if not db_path(settings).exists():
        return settings, None
    return settings, open_log(settings, force=True)


@log_app.command("purge")
def log_purge(
    before: Annotated[Optional[float], typer.Option("--before", help="Delete questions and votes older than this many days [default: QA_QUESTION_LOG_DAYS].", min=0)] = None,
    everything: Annotated[bool, typer.Option("--all", help="Delete every question and vote.")] = False,
    index: IndexOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete logged questions and votes: older than --before DAYS, or --all."""
    from qa.questionlog import close_logs

    settings, qlog = _open_log(index)
    if qlog is None:
        out = {"questions": 0, "votes": 0, "note": "no question log yet"}
    else:
        out = qlog.purge(before_days=before if before is not None else settings.question_log_days, everything=everything)
        close_logs()
    if json_out:
        print(json.dumps(out, ensure_ascii=False))
    else:
        console.print(f"deleted {out['questions']} questions and {out['votes']} votes")


@log_app.command("stats")
def log_stats(index: IndexOpt = None, json_out: JsonOpt = False) -> None:
    """Where the log is, how many questions and votes it holds, and whether logging is on."""
    from qa.questionlog import close_logs, db_path

    settings, qlog = _open_log(index)
    out = qlog.counts() if qlog is not None else {"path": str(db_path(settings)), "questions": 0, "votes": 0}
    out["logging"] = "on" if settings.question_log else "off"
    out["retention_days"] = settings.question_log_days
    close_logs()
    if json_out:
        print(json.dumps(out, ensure_ascii=False))
        return
    import time

    for k, v in out.items():
        if k in ("oldest", "newest") and v:
            v = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
        console.print(f"[bold]{k:>15}[/]: {v}")


@app.command()
def gaps(
    since: Annotated[str, typer.Option(help="Period to report on: 30d, 12h, 2w.")] = "30d",
    top: Annotated[int, typer.Option(help="Topics to list.", min=1, max=500)] = 30,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write the report as one HTML page to FILE.")] = None,
    index: IndexOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What the articles don't cover: asked topics, down-voted answers, stub hits, not-covered rate."""
    from qa.gaps import build_report, describe, parse_since
    from qa.questionlog import close_logs
    from qa.store import IndexNotFound, IndexReader

    try:
        since_s = parse_since(since)
    except ValueError as exc:
        _fail(str(exc))
    settings, qlog = _open_log(index)
    if qlog is None:
        _fail(f"no question log in {settings.state_dir or settings.index_dir}/ yet: questions are logged by "
              "`qa serve`, the bots and `qa ask` (unless QA_QUESTION_LOG=off)", 2)
    try:
        reader = IndexReader(settings.index_dir)
    except IndexNotFound:
        reader = None
        err.print(f"[yellow]no index in {settings.index_dir}/: nearest sections are not looked up[/]")

    def embed(texts: list[str]):  # only for questions logged without a vector (method=lexical)
        from qa.embeddings import get_embedder

        if not json_out:
            err.print(f"embedding {len(texts)} questions logged without a vector…")
        return get_embedder(reader.model if reader else settings.model, settings).encode_queries(texts)

    report = build_report(qlog, since_s, reader=reader, settings=settings, embed=embed, top=top)
    close_logs()
    if html is not None:
        from qa.gaps_html import render_html

        html.write_text(render_html(report), encoding="utf-8")
    if json_out:
        print(report.model_dump_json(indent=2))
        return
    r = report
    nc = r.statuses.get("not_covered", 0)
    console.print(
        f"[bold]{r.questions}[/] questions in the last {since}: {nc} not covered "
        f"({nc / max(1, r.questions):.0%}), {r.statuses.get('stub', 0)} from a stub, "
        f"{r.votes.get('down', 0)} 👎 / {r.votes.get('up', 0)} 👍, {r.groups_total} topics ({r.took_ms:.0f} ms)"
    )
    from rich.markup import escape

    for g in r.groups:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(g.statuses.items()))
        console.print(f"\n[bold]{g.id}. {escape(g.name)}[/] — {escape(describe(g))}  [dim]({mix})[/]")
        for q in g.examples[:3]:
            console.print(f"   · {escape(q)}")
    if r.down_voted:
        console.print("\n[bold]voted down[/]")
        for d in r.down_voted[:10]:
            where = ", ".join(f"{s.get('path')}:{(s.get('lines') or [0])[0]}" for s in d.sources[:2])
            console.print(f"   👎 {d.down} {escape(d.question)}  [dim]{escape(where)}[/]")
    if r.stubs:
        console.print("\n[bold]stub sections hit[/]")
        for s in r.stubs[:10]:
            console.print(f"   {s.hits:>4}  {escape(s.where)}  {escape(s.heading or s.title)}")
    if r.unmentioned:
        console.print("\n[bold]asked about, mentioned in no article[/]")
        for m in r.unmentioned[:10]:
            console.print(f"   {m.count:>4}  {escape(m.name)}  [dim]{escape(m.examples[0])}[/]")
    if html is not None:
        err.print(f"wrote {html}")
@app.command("eval-dialogues")
def eval_dialogues_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dialogues, one JSON object per line (bench/data/dialogues.jsonl).")] = Path("bench/data/dialogues.jsonl"),
    index: IndexOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", min=1, max=50, help="Passages per answer [env QA_TOP_K, default 5].")] = None,
    collection: Annotated[Optional[str], typer.Option("--collection", "-c", help="Only this collection.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the JSON result to this file.")] = None,
    standalone: Annotated[Optional[Path], typer.Option(help="Also count how many questions of this single-turn SQuAD file would be read as follow-ups.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Score follow-up questions on multi-turn dialogues, with follow-up resolution on and off.

    The index is only read (earlier turns are kept in memory). Reports file hit@1, passage hit@1
    and answer-hit for follow-up, standalone and first turns, and how often standalone questions
    were rewritten.
    """
    from qa.assistant import Assistant
    from qa.eval_dialogues import evaluate_dialogues
    from qa.store import IndexMismatch, IndexNotFound

    if not dataset.exists():
        _fail(f"{dataset} not found")
    settings = _settings(index)
    try:
        assistant = Assistant.open(settings=settings)
    except (IndexNotFound, IndexMismatch) as exc:
        _fail(str(exc), 2)
    from rich.progress import Progress

    try:
        with Progress(console=err, disable=json_out or not sys.stderr.isatty(), transient=True) as bar:
            task = bar.add_task("dialogues (resolution on, off, in context)", total=None)
            result = evaluate_dialogues(dataset, assistant, top_k=top_k or settings.top_k, collection=collection,
                                        progress=lambda: bar.advance(task))
    except ValueError as exc:
        _fail(str(exc))
    if standalone is not None:
        from qa.eval_dialogues import standalone_rate

        if not standalone.exists():
            _fail(f"{standalone} not found")
        result["standalone_set"] = standalone_rate(standalone)
    result["index"] = {"dir": str(settings.index_dir), **{k: assistant.stats().get(k) for k in ("generation", "model", "chunks", "documents")}}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if json_out:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{dataset.name}: {result['dialogues']} dialogues, {result['turns']} turns")
    table.add_column("turns")
    table.add_column("n", justify="right")
    for col in ("file hit@1", "passage hit@1", "answer-hit"):
        table.add_column(f"{col} on / off", justify="right")
    table.add_column("rewritten", justify="right")
    for g in ("followup", "standalone", "first", "standalone_in_context"):
        on, off = result["with_resolution"][g], result["without_resolution"][g]
        table.add_row(g, str(on["turns"]), *[f"{on[k]} / {off[k]}" for k in ("file_hit@1", "passage_hit@1", "answer_hit")], str(on["rewritten"]))
    console.print(table)
    if "standalone_set" in result:
        st = result["standalone_set"]
        console.print(f"{st['dataset']}: {st['read_as_followup']} of {st['questions']} single-turn questions read as follow-ups ({st['rate']})")
    console.print(f"standalone questions rewritten: {result['standalone_rewritten_rate']} · resolution "
                  f"{result['resolve_ms_p50']} ms p50 · {len(result['misses'])} misses (see --json)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
