"""What a question may be: the one check the library, the HTTP API, the chat bots and the CLI share.

``QA_MAX_QUESTION_CHARS`` (``Settings.max_question_chars``, default 500) is the limit; the API
publishes the same number as the ``maxLength`` of its question in ``/openapi.json``.
"""

from __future__ import annotations


class QuestionError(ValueError):
    """The question cannot be answered as given (empty, too long); ``code`` names which."""

    code = "invalid_question"


class QuestionTooLong(QuestionError):
    code = "question_too_long"


def check_question(question: str | None, max_chars: int) -> str:
    """The question, stripped; QuestionError when it is empty or longer than ``max_chars``."""
    q = (question or "").strip()
    if not q:
        raise QuestionError("question is empty: ask something, e.g. 'k8s 和 Docker 是什么关系？'")
    if len(q) > max_chars:
        raise QuestionTooLong(f"question is {len(q)} characters long; the limit is {max_chars}")
    return q
