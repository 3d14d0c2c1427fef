"""The Python API: open an index once, ask many questions, from many threads.

    from qa import Assistant
    bot = Assistant.open("index/")
    answer = bot.ask("k8s 和 Docker 是什么关系？")
    print(answer.answer, answer.citations[0].path)

The assistant follows the index: when ``qa ingest`` publishes a new generation,
the next question is answered from it (in-flight questions finish on the old one).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from qa import lexical
from qa.answer import (
    NOT_COVERED,
    NOT_MENTIONED,
    best_stub,
    confidence,
    see_source_answer,
    stub_answer,
    stub_hit,
    unnamed_in_passages,
)
from qa.config import Settings, get_settings
from qa.embeddings import Embedder, get_embedder
from qa.encoder import same_model
from qa.limits import QuestionError, check_question  # noqa: F401  (QuestionError: callers import it from here)
from qa.responses import Answer, Citation, ConversationInfo, IndexInfo, Scores, Timings
from qa.mentions import MentionIndex
from qa.retrieval import Hit, make_query, search
from qa.store import IndexMismatch
from qa.vectors.base import StoreUnavailable, VectorIndex
from qa.vectors.factory import open_index
from qa.writers import AnswerWriter, get_writer
from qa.writers.base import TokenCallback

RELOAD_CHECK_SECONDS = 0.5

#: given the loaded Embedder, what questions are embedded with (see ``Assistant``)
QueryEncoderFactory = Callable[[Embedder], Embedder]


class Assistant:
    """``query_encoder``, when given, is called with each :class:`qa.embeddings.Embedder` the
    assistant loads (at open, and again when a newer generation was built with another model)
    and returns what questions are embedded with: something with the Embedder's interface, e.g.
    the service's micro-batcher (:mod:`api.runtime`). ``embedder`` is that object."""

    def __init__(
        self,
        index_dir: Path,
        settings: Settings,
        model: str | None = None,
        writer: AnswerWriter | None = None,
        query_encoder: QueryEncoderFactory | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.settings = settings
        self._explicit_model = model
        self._query_encoder = query_encoder
        self._lock = threading.Lock()
        self._last_check = 0.0
        self._state: _GenerationState | None = None  # lookups remembered for the served generation
        self._reader = self._open_reader()
        self.embedder: Embedder = self._load_embedder(self._reader.model)
        lexical.warm()
        # chosen once: extractive unless QA_LLM_BASE_URL is set (qa/writers)
        self.writer: AnswerWriter = writer or get_writer(settings, encode=lambda texts: self.embedder.encode_queries(texts))

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        model: str | None = None,
        writer: AnswerWriter | None = None,
        query_encoder: QueryEncoderFactory | None = None,
    ) -> "Assistant":
        settings = settings or get_settings()
        if model is None and "model" in settings.model_fields_set:
            model = settings.model
        return cls(Path(index_dir or settings.index_dir), settings, model, writer, query_encoder)

    def _load_embedder(self, model: str) -> Embedder:
        emb = get_embedder(model, self.settings)
        return self._query_encoder(emb) if self._query_encoder is not None else emb

    def use_query_encoder(self, query_encoder: QueryEncoderFactory | None) -> None:
        """Embed questions with ``query_encoder(embedder)`` from now on (None: the plain embedder)."""
        with self._lock:
            self._query_encoder = query_encoder
            self.embedder = self._load_embedder(self._reader.model)

    def _open_reader(self) -> VectorIndex:
        reader = open_index(self.settings, self.index_dir)  # QA_VECTOR_STORE: faiss | milvus
        if self._explicit_model and not same_model(self._explicit_model, reader.model):
            raise IndexMismatch(
                f"the index in {self.index_dir}/ was built with model {reader.model!r}, not "
                f"{self._explicit_model!r}; rebuild it with `qa ingest --rebuild --model {self._explicit_model}` "
                "or ask without --model/QA_MODEL"
            )
        return reader

    @property
    def reader(self) -> VectorIndex:
        """The current generation; swapped atomically when a newer one is published."""
        now = time.monotonic()
        if now - self._last_check >= RELOAD_CHECK_SECONDS:
            self._last_check = now
            if self._stale():
                with self._lock:
                    if self._stale():
                        fresh = self._open_reader()
                        if not same_model(fresh.model, self.embedder.name):
                            self.embedder = self._load_embedder(fresh.model)
                        self._reader = fresh
        return self._reader

    def _stale(self) -> bool:
        try:
            return self._reader.is_stale()
        except StoreUnavailable:  # Milvus unreachable: keep the loaded generation; searches say 503
            return False

    def validate(self, question: str) -> str:
        """The question, stripped, or QuestionError (:func:`qa.limits.check_question`, QA_MAX_QUESTION_CHARS)."""
        return check_question(question, self.settings.max_question_chars)

    def retrieve(self, question: str, top_k: int | None = None, method: str = "hybrid", collection: str | None = None) -> tuple[list[Hit], Timings]:
        reader = self.reader
        t0 = time.perf_counter()
        qvec = self.embedder.encode_query(question) if method != "lexical" else None
        t1 = time.perf_counter()
        query = make_query(question)
        hits = search(
            reader, qvec, query, k=top_k or self.settings.top_k, method=method,
            candidates=self.settings.candidates, rrf_k=self.settings.rrf_k, collection=collection,
            fusion=self.settings.fusion, dense_weight=self.settings.dense_weight,
        )
        for h in hits:
            h.confidence = confidence(h)
            h.generation = reader.generation
        t2 = time.perf_counter()
        return hits, Timings(embed_ms=(t1 - t0) * 1000, search_ms=(t2 - t1) * 1000)

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        method: str = "hybrid",
        collection: str | None = None,
        answer_chars: int | None = None,
        conversation=None,
    ) -> Answer:
        """Retrieve, then answer: the two steps callers that need the hits in between
        (the stream's progress event, ``qa eval``) run themselves.

        ``conversation`` (a :class:`qa.conversations.Conversation`, a conversation id, or
        True for a new one) makes this a turn of a conversation: a follow-up question is
        searched with the topic of the earlier turns (``Answer.searched`` says what was
        searched) and the turn is remembered. None (the default): the question stands alone."""
        if conversation is not None:
            t0 = time.perf_counter()
            turn = self.begin(question, conversation)
            return self.complete(turn, top_k, method, collection, answer_chars, started=t0)
        t0 = time.perf_counter()
        question = self.validate(question)
        hits, timings = self.retrieve(question, top_k or self.settings.top_k, method, collection)
        return self.answer(question, hits, timings=timings, answer_chars=answer_chars, started=t0)

    # ---- conversations (qa/conversations.py, qa/followup.py) ------------------------------
    @property
    def conversations(self):
        """The conversation store beside the index (opened on first use)."""
        store = getattr(self, "_conversations", None)
        if store is None:
            from qa.conversations import ConversationStore

            with self._lock:
                store = getattr(self, "_conversations", None)
                if store is None:
                    store = self._conversations = ConversationStore.open(self.settings)
        return store

    def conversation(self, conversation_id: str | None = None):
        """A new conversation (or ``conversation_id``'s) whose ``ask`` resolves follow-ups."""
        from qa.conversations import Conversation

        return Conversation(self, conversation_id)

    def begin(self, question: str, conversation=True):
        """Validate, find the conversation, decide what to search: a :class:`qa.conversations.Pending`.

        Raises QuestionError, or BadConversationId for an id of the wrong form."""
        from qa.conversations import Conversation, Pending
        from qa.followup import Resolution, resolve

        question = self.validate(question)
        handle = conversation if isinstance(conversation, Conversation) else None
        cid = handle.id if handle is not None else (conversation if isinstance(conversation, str) else None)
        opened = self.conversations.open_conversation(cid)
        if self.settings.followup:
            res = resolve(question, opened.history)
        else:
            res = Resolution(question, question)
        return Pending(question, opened, res, handle)

    def complete(self, turn, top_k=None, method="hybrid", collection=None, answer_chars=None, started=None) -> Answer:
        """Retrieve for ``turn.searched``, answer, and remember the turn."""
        t0 = started if started is not None else time.perf_counter()
        hits, timings = self.retrieve(turn.resolution.searched, top_k or self.settings.top_k, method, collection)
        ans = self.answer(turn.resolution.searched, hits, timings=timings, answer_chars=answer_chars, started=t0)
        return self.finish(turn, ans)

    def finish(self, turn, ans: Answer) -> Answer:
        """Record the answered turn and say where it sits (``ans`` comes from ``answer(turn.resolution.searched, …)``)."""
        from qa.followup import Turn

        res, opened = turn.resolution, turn.opened
        searched = res.searched if res.searched != turn.question else None
        top = ans.citations[0] if ans.citations and not ans.abstained else None
        titles = [top.title, top.heading.split(" > ")[-1]] if top is not None else []
        resolved = res.resolved if res.resolved not in (None, turn.question) else None
        n = self.conversations.add_turn(opened.id, Turn(turn.question, searched, titles, not ans.abstained, resolved))
        if turn.handle is not None:
            turn.handle.id = opened.id
        return ans.model_copy(update={
            "question": turn.question,
            "searched": searched,
            "conversation_id": opened.id,
            "conversation": ConversationInfo(
                id=opened.id, turn=n, new=opened.new, restarted=opened.restarted,
                followup=res.reason if (res.rewritten or res.fresh) else None, notice=opened.notice,
            ),
        })

    def answer(
        self,
        question: str,
        hits: list[Hit],
        timings: Timings | None = None,
        answer_chars: int | None = None,
        started: float | None = None,
        on_token: TokenCallback | None = None,
    ) -> Answer:
        """The answer to ``question`` from already ranked ``hits`` (no second retrieval).

        ``on_token`` sees an LLM writer's text as it streams (before verification)."""
        t0 = started if started is not None else time.perf_counter()
        timings = timings or Timings()
        reader = self.reader
        state = self._generation_state(reader)
        tc = time.perf_counter()
        best = max((h.confidence for h in hits[:3]), default=0.0)
        abstained = best < self.settings.min_confidence
        unmentioned = state.mentions.missing(question)
        abstained = abstained or bool(unmentioned)
        citations: list[Citation] = []
        text = NOT_MENTIONED.format(names="、".join(unmentioned)) if unmentioned else NOT_COVERED
        status = "not_covered" if abstained else "answered"
        written = None
        if not abstained:
            # only passages that are plausibly relevant may feed the answer
            usable = [h.confidence >= self.settings.min_confidence / 2 for h in hits]
            query = make_query(question)
            ranked, ranked_usable = hits, usable
            extra = None
            if not any(h.chunk.is_stub for h in hits[:5]):
                # a stub section ranked below the cited passages (its text is only "待补充"):
                # the one whose headings are about the question is weighed against them
                extra = best_stub(query, state.stubs(reader))
                if extra is not None:
                    ranked, ranked_usable = hits[:5] + [extra], usable[:5] + [True]
            stub = stub_hit(query, ranked, ranked_usable, depth=len(ranked) if extra is not None else 5)
            if extra is not None and stub == len(ranked) - 1:
                stub = next((i for i, h in enumerate(hits) if h.chunk.id == extra.chunk.id), None)
                if stub is None:
                    hits, stub = hits + [extra], len(hits)
            if stub is not None:
                # "not written yet" is decided from the passages, like "not covered": no writer
                status = "stub"
                text, highlights = stub_answer(hits, stub)
            elif unnamed_in_passages(question, hits, usable):
                # the passages are about a neighbouring subject, not the name asked about
                abstained, status, text, highlights = True, "not_covered", NOT_COVERED, {}
            else:
                written = self.writer.write(
                    question, hits, budget=answer_chars or self.settings.answer_chars, usable=usable, on_token=on_token
                )
                text, highlights = written.text, written.highlights
                timings.llm_ms = written.llm_ms
                if not text.strip():
                    # nothing quotable in the usable passages (only a stub, or links): never an
                    # empty "answer" — the stub section if there is one, else not covered
                    stub = next((i for i, h in enumerate(hits[:5]) if h.chunk.is_stub), None)
                    pointer = see_source_answer(hits)
                    if stub is not None:
                        status = "stub"
                        text, highlights = stub_answer(hits, stub)
                    elif pointer is not None:
                        text, highlights = pointer
                    else:
                        abstained, status, text, highlights, written = True, "not_covered", NOT_COVERED, {}, None
            for i, h in enumerate(hits if not abstained else []):
                citations.append(self._citation(i + 1, h, highlights.get(i, [])))
        timings.compose_ms = (time.perf_counter() - tc) * 1000
        return Answer(
            question=question,
            answer=text,
            abstained=abstained,
            status=status,
            confidence=round(best, 4),
            unmentioned=unmentioned,
            citations=citations,
            took_ms=round((time.perf_counter() - t0) * 1000, 2),
            timings=timings,
            # the generation the passages came from: a swap between retrieve() and answer() must not
            # label an answer from the old articles with the new generation
            index=IndexInfo(generation=next((h.generation for h in hits if h.generation), None) or reader.generation,
                            model=reader.model),
            **_writer_fields(written),
        )

    def _generation_state(self, reader: VectorIndex) -> "_GenerationState":
        state = self._state
        if state is None or state.generation != getattr(reader, "generation", None):
            state = self._state = _GenerationState(getattr(reader, "generation", None), MentionIndex(reader))
        return state

    def unmentioned(self, question: str) -> list[str]:
        """The question's names (see :mod:`qa.mentions`) that no passage of the served index
        mentions, as the question spells them."""
        reader = self.reader
        return self._generation_state(reader).mentions.missing(question)

    def _citation(self, n: int, h: Hit, highlights: list[list[int]]) -> Citation:
        c = h.chunk
        url = c.doc_meta.get("url") or c.doc_meta.get("permalink")
        if self.settings.base_url and not (url and url.startswith(("http://", "https://"))):
            base = self.settings.base_url.rstrip("/")
            url = f"{base}/{(url or c.doc_path).lstrip('/')}"
        return Citation(
            n=n,
            title=c.title,
            path=c.source,
            url=url,
            heading=c.heading,
            text=c.text,
            start=c.start,
            end=c.end,
            line_start=c.line_start,
            line_end=c.line_end,
            collection=c.collection,
            kind=c.kind if c.kind in ("text", "code", "table", "diagram") else "text",
            low_confidence=h.confidence < self.settings.min_confidence,
            highlights=highlights,
            scores=Scores(
                fused=round(h.fused, 6),
                dense=None if h.dense is None else round(h.dense, 4),
                lexical=None if h.lexical is None else round(h.lexical, 4),
                confidence=round(h.confidence, 4),
            ),
        )

    def stats(self) -> dict:
        return self.reader.info()


class _GenerationState:
    """What the assistant remembers about one served generation (it is read-only while served):
    which names its passages mention, and its few stub sections (read on first need)."""

    def __init__(self, generation: str | None, mentions: MentionIndex):
        self.generation, self.mentions = generation, mentions
        self._stubs: list | None = None

    def stubs(self, reader: VectorIndex) -> list:
        if self._stubs is None:
            ids = reader.stub_ids()[:2000] if hasattr(reader, "stub_ids") else []
            self._stubs = list(reader.chunks(ids).values())
        return self._stubs


def _writer_fields(written) -> dict:
    """Answer fields that say who wrote the text and how it was verified (none when abstained)."""
    if written is None:
        return {}
    return {
        "writer": written.writer,
        "writer_fallback_reason": written.fallback_reason,
        "sentences": written.sentences,
        "verified_share": written.verified_share,
    }
