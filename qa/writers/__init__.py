"""Answer writers: extractive (default) or an OpenAI-compatible LLM checked against its citations."""

from qa.writers.base import AnswerWriter, Written, get_writer

__all__ = ["AnswerWriter", "Written", "get_writer"]
