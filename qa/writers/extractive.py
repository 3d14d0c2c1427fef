"""Today's answers: the passages' own best sentences, quoted (``qa.answer.compose``)."""

from __future__ import annotations

from qa.answer import compose
from qa.retrieval import Hit, make_query
from qa.writers.base import AnswerWriter, TokenCallback, Written


class ExtractiveWriter(AnswerWriter):
    name = "extractive"

    def write(
        self,
        question: str,
        hits: list[Hit],
        *,
        budget: int,
        usable: list[bool] | None = None,
        on_token: TokenCallback | None = None,
    ) -> Written:
        text, highlights = compose(make_query(question), hits, budget=budget, usable=usable)
        return Written(text=text, highlights=highlights, writer="extractive")
