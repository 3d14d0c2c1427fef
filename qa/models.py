"""Pydantic shapes shared by the Python API, the CLI's --json output and HTTP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

AnswerStatus = Literal["answered", "not_covered", "stub"]


class Scores(BaseModel):
    fused: float = Field(description="rank-fusion score used for ordering")
    dense: float | None = Field(None, description="cosine similarity of question and passage")
    lexical: float | None = Field(None, description="BM25 score over bigrams/identifiers")
    confidence: float | None = Field(None, description="calibrated 0..1 relevance of this passage")


class Citation(BaseModel):
    n: int = Field(description="the marker number used in the answer text: [n]")
    title: str
    path: str = Field(description="source file, relative to the working directory when possible")
    url: str | None = None
    heading: str = Field(description="heading path, e.g. 'A > B'")
    text: str = Field(description="the passage, exactly as in the cleaned article")
    start: int = Field(description="character offset of the passage in the cleaned article body")
    end: int
    line_start: int = Field(description="1-based first source line")
    line_end: int
    collection: str = "default"
    low_confidence: bool = False
    highlights: list[list[int]] = Field(
        default_factory=list, description="[start, end) character ranges of the passage quoted in the answer"
    )
    scores: Scores


class IndexInfo(BaseModel):
    generation: str
    model: str


class Timings(BaseModel):
    embed_ms: float = 0.0
    search_ms: float = 0.0
    compose_ms: float = 0.0


class ConversationInfo(BaseModel):
    """Where this answer sits in a conversation (qa/conversations.py)."""

    id: str = Field(description="pass it back as conversation_id to ask a follow-up")
    turn: int = Field(description="1-based number of this question in the conversation")
    new: bool = Field(description="this question started the conversation")
    restarted: bool = Field(False, description="the conversation_id sent was unknown or had expired, so a new one was started")
    followup: str | None = Field(None, description="why the question was read as a follow-up (e.g. 'pronoun 它'), else null")
    notice: str | None = None


class Answer(BaseModel):
    question: str
    answer: str
    abstained: bool
    status: AnswerStatus = Field(
        "answered",
        description="answered; not_covered (the articles do not answer it, same as abstained); "
        "stub (the best section exists but is not written yet)",
    )
    confidence: float = Field(description="calibrated 0..1 confidence that the articles answer the question")
    citations: list[Citation]
    took_ms: float
    timings: Timings = Field(default_factory=Timings)
    index: IndexInfo
    conversation_id: str | None = Field(None, description="the conversation this turn belongs to (null outside conversations)")
    searched: str | None = Field(
        None, description="what was searched when it differs from the question (a follow-up resolved against "
        "earlier turns); null: the question was searched as asked"
    )
    conversation: ConversationInfo | None = None
