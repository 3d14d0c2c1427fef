"""Pydantic shapes shared by the Python API, the CLI's --json output and HTTP."""

from __future__ import annotations

import secrets
from typing import Literal

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

AnswerStatus = Literal["answered", "not_covered", "stub"]


def new_answer_id() -> str:
    """A random, unguessable id: votes name an answer by it (POST /feedback)."""
    return "ans_" + secrets.token_hex(10)


class Scores(BaseModel):
    fused: float = Field(
        description="the score passages are ordered by (not a rank fusion by default): with QA_FUSION=weighted "
        "the dense and BM25 scores, each scaled to 0..1, mixed by QA_DENSE_WEIGHT (QA_FUSION=rrf: reciprocal rank "
        "fusion); halved for a stub, plus a bonus for the best two-sentence window's coverage of the question's "
        "terms; comparable only within one answer"
    )
    dense: float | None = Field(None, description="cosine similarity of question and passage")
    lexical: float | None = Field(None, description="BM25 score over bigrams/identifiers")
    confidence: float | None = Field(None, description="calibrated 0..1 relevance of this passage")


class Citation(BaseModel):
    n: int = Field(description="the marker number used in the answer text: [n]")
    title: str = Field(description="the article's title, plain text (any HTML in it is text, not markup)")
    path: str = Field(description="source file, relative to the working directory when possible")
    url: str | None = Field(
        None, description="the article's link: an absolute http(s) URL, or null (other schemes such as "
        "javascript: are never returned)",
    )
    heading: str = Field(description="heading path, e.g. 'A > B', plain text")
    text: str = Field(description="the passage, exactly as in the cleaned article; plain text, not HTML")
    start: int = Field(description="character offset of the passage in the cleaned article body")
    end: int
    line_start: int = Field(description="1-based first source line")
    line_end: int
    collection: str = "default"
    kind: Literal["text", "code", "table", "diagram"] = Field(
        "text", description="what the passage is: prose (text), a code block, a table, or a diagram's source "
        "(mermaid, plantuml, dot...: not prose, do not quote it as such)",
    )
    low_confidence: bool = False
    highlights: list[list[int]] = Field(
        default_factory=list, description="[start, end) character ranges of the passage quoted in the answer"
    )
    scores: Scores

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str | None) -> str | None:
        """Article front matter is untrusted: a consumer may put the URL in a link as it is."""
        if v is None:
            return None
        try:
            parts = urlsplit(v.strip())
        except ValueError:
            return None
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ord(c) < 32 for c in v):
            return None
        return v.strip()


class IndexInfo(BaseModel):
    generation: str
    model: str


class Timings(BaseModel):
    embed_ms: float = 0.0
    search_ms: float = 0.0
    compose_ms: float = 0.0
    llm_ms: float | None = Field(None, description="time spent on the LLM call, when one was made")


class SentenceCheck(BaseModel):
    """One sentence of a written (LLM) answer and what verification found for it."""

    text: str = Field(description="the sentence as shown, markers included")
    cited: list[int] = Field(default_factory=list, description="citation numbers the sentence carries")
    supported: bool = Field(description="a cited passage states it (lexical + dense check, qa/writers/verify.py)")
    span: list[int] | None = Field(None, description="[n, start, end): the passage and character range that supports it")
    score: float = Field(0.0, description="verification score of the best cited passage, 0..1")
    reason: str | None = Field(None, description="why unsupported: no_citation | not_in_passage | number_or_name | negation")


WriterName = Literal["extractive", "llm"]


class ConversationInfo(BaseModel):
    """Where this answer sits in a conversation (qa/conversations.py)."""

    id: str = Field(description="pass it back as conversation_id to ask a follow-up")
    turn: int = Field(description="1-based number of this question in the conversation")
    new: bool = Field(description="this question started the conversation")
    restarted: bool = Field(False, description="the conversation_id sent was unknown or had expired, so a new one was started")
    followup: str | None = Field(None, description="why the question was read as a follow-up (e.g. 'pronoun 它'), else null")
    notice: str | None = None


class Answer(BaseModel):
    """Every text field (question, answer, titles, headings, passages) is plain text: render it
    as text (escaped), never as HTML or markup."""

    question: str
    answer: str = Field(description="the extractive answer with [n] markers; plain text")
    abstained: bool
    status: AnswerStatus = Field(
        "answered",
        description="answered; not_covered (the articles do not answer it, same as abstained); "
        "stub (the best section exists but is not written yet)",
    )
    confidence: float = Field(description="calibrated 0..1 confidence that the articles answer the question")
    unmentioned: list[str] = Field(
        default_factory=list, description="names in the question (Velero, k3s …) that no article mentions; "
        "when not empty the answer is not_covered"
    )
    citations: list[Citation]
    took_ms: float
    timings: Timings = Field(default_factory=Timings)
    index: IndexInfo
    writer: WriterName = Field("extractive", description="who wrote the text: extractive (quoted sentences) or llm")
    writer_fallback_reason: str | None = Field(
        None, description="why an LLM was configured but the extractive answer was returned "
        "(timeout, connection_error, http_401, http_500, verification_failed, ...)"
    )
    sentences: list[SentenceCheck] = Field(
        default_factory=list, description="per-sentence verification of an LLM answer (empty for extractive)"
    )
    verified_share: float | None = Field(None, description="share of the LLM answer's sentences that are supported")
    answer_id: str = Field(
        default_factory=new_answer_id, description="names this answer for POST /feedback (👍/👎)"
    )
    conversation_id: str | None = Field(None, description="the conversation this turn belongs to (null outside conversations)")
    searched: str | None = Field(
        None, description="what was searched when it differs from the question (a follow-up resolved against "
        "earlier turns); null: the question was searched as asked"
    )
    conversation: ConversationInfo | None = None
