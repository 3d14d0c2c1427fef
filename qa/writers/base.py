"""The answer-writer seam: question + ranked passages -> answer text with ``[n]`` markers.

Abstention is decided before any writer runs (:meth:`qa.assistant.Assistant.answer`), so a
writer is only asked for questions the passages are believed to answer. Today's extractive
composer is one writer; an OpenAI-compatible LLM, checked sentence by sentence against the
passages it cites, is the other (:mod:`qa.writers.grounded`). ``get_writer`` picks one from the
settings once, when the Assistant is made; with no ``QA_LLM_BASE_URL`` nothing else is imported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np

    from qa.config import Settings
    from qa.responses import SentenceCheck
    from qa.retrieval import Hit

#: called with each piece of text as an LLM streams it (before verification)
TokenCallback = Callable[[str], None]
#: texts -> L2-normalised vectors (the Assistant's embedding model), for verification
EncodeFn = Callable[[list[str]], "np.ndarray"]


@dataclass
class Written:
    """What a writer returns; ``highlights[i]`` are the quoted ranges of passage ``i`` (0-based)."""

    text: str
    highlights: dict[int, list[list[int]]] = field(default_factory=dict)
    writer: str = "extractive"
    fallback_reason: str | None = None
    sentences: list["SentenceCheck"] = field(default_factory=list)
    verified_share: float | None = None
    llm_ms: float | None = None


class AnswerWriter(ABC):
    """Writes the answer from passages already judged relevant; never decides abstention."""

    name: str = "extractive"

    @abstractmethod
    def write(
        self,
        question: str,
        hits: list["Hit"],
        *,
        budget: int,
        usable: list[bool] | None = None,
        on_token: TokenCallback | None = None,
    ) -> Written:
        """``usable[i]`` False keeps passage ``i`` out of the answer; its number stays ``i + 1``."""


def get_writer(settings: "Settings", encode: EncodeFn | None = None) -> AnswerWriter:
    """The extractive writer, or (when ``QA_LLM_BASE_URL`` is set) the verified LLM writer.

    ``encode`` embeds sentences for verification; it is required for the LLM writer."""
    from qa.writers.extractive import ExtractiveWriter

    extractive = ExtractiveWriter()
    if not settings.llm_base_url:
        return extractive
    if encode is None:
        raise ValueError("the LLM writer needs an encode function for verification")
    from qa.writers.grounded import GroundedWriter
    from qa.writers.openai_compat import ChatClient

    return GroundedWriter(ChatClient.from_settings(settings), encode, extractive, settings)
