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
    """The question, stripped; QuestionError when it is empty or longer than ``max_chars``.

    The length is the question as sent, surrounding whitespace included: that is what the
    published ``maxLength`` counts, so a client validating against /openapi.json and the server
    agree (Python's strip() also removes control characters such as U+001C)."""
    raw = question or ""
    q = raw.strip()
    if not q:
        raise QuestionError("question is empty: ask something, e.g. 'k8s 和 Docker 是什么关系？'")
    if len(raw) > max_chars:
        raise QuestionTooLong(f"question is {len(raw)} characters long; the limit is {max_chars}")
    return q
