"""A minimal OpenAI-compatible chat-completions client over ``httpx`` (already a dependency).

``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``max_tokens``,
``temperature`` and ``stream``: the subset that vLLM, Ollama (``/v1``), llama.cpp's
``llama-server``, DeepSeek, Qwen (DashScope compatible mode), GLM (Zhipu) and Kimi all
accept. Streaming answers are ``text/event-stream`` lines ``data: {chunk}`` whose
``choices[0].delta.content`` carries the text, ending with ``data: [DONE]``; a server that
answers a streaming request with one JSON body is read as a non-streaming reply.

Every failure is an :class:`LLMError` with a short machine-readable ``reason`` (``timeout``,
``connection_error``, ``http_401``, ``http_500``, ``bad_response``, ``empty_answer``), which
becomes the answer's ``writer_fallback_reason``. The API key is sent as a Bearer token and
never appears in a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import httpx

from qa.writers.base import TokenCallback

log = logging.getLogger("qa.llm")


class LLMError(RuntimeError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Completion:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    chunks: int = 0
    extra: dict = field(default_factory=dict)


def completions_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


class ChatClient:
    """One pooled HTTP client per writer; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        max_tokens: int = 400,
        temperature: float = 0.1,
        stream: bool = True,
        max_connections: int = 16,
    ):
        self.url = completions_url(base_url)
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stream = stream
        headers = {"Accept": "text/event-stream, application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,  # an internal endpoint must not be sent through a proxy from the environment
        )

    @classmethod
    def from_settings(cls, settings) -> "ChatClient":
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            settings.llm_base_url, settings.llm_model, key, settings.llm_timeout_s, settings.llm_max_tokens,
            settings.llm_temperature, settings.llm_stream, settings.llm_concurrency,
        )

    def close(self) -> None:
        self._http.close()

    def complete(
        self,
        messages: list[dict],
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """The whole reply; ``on_token`` sees each streamed piece. Raises :class:`LLMError`."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": self.stream,
        }
        try:
            with self._http.stream("POST", self.url, json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise LLMError(f"http_{resp.status_code}", _error_message(resp))
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" in ctype:
                    out = self._read_stream(resp, on_token, cancel, deadline)
                else:
                    resp.read()
                    out = self._read_json(resp)
                    if on_token and out.text:
                        on_token(out.text)
        except httpx.TimeoutException as exc:
            raise LLMError("timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:  # refused, reset, DNS, protocol
            raise LLMError("connection_error", type(exc).__name__) from None
        if not out.text.strip():
            raise LLMError("empty_answer")
        return out

    def _read_stream(self, resp: httpx.Response, on_token, cancel, deadline) -> Completion:
        out = Completion(text="")
        parts: list[str] = []
        for line in resp.iter_lines():
            if cancel is not None and cancel.is_set():
                raise LLMError("cancelled")
            if deadline is not None and time.monotonic() > deadline:
                raise LLMError("timeout", "stream too slow")
            if not line.startswith("data:"):
                continue  # event:, id:, comments and keep-alives
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                chunk = json.loads(payload)
            except json.JSONDecodeError:
                raise LLMError("bad_response", "a stream chunk is not JSON") from None
            if "error" in chunk:
                raise LLMError("stream_error", str(chunk.get("error"))[:200])
            _usage(out, chunk)
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    parts.append(piece)
                    out.chunks += 1
                    if on_token:
                        on_token(piece)
        out.text = "".join(parts)
        if out.completion_tokens is None and out.chunks:
            out.completion_tokens = out.chunks  # servers send about one token per chunk
        return out

    def _read_json(self, resp: httpx.Response) -> Completion:
        try:
            data = resp.json()
            text = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError("bad_response", "no choices[0].message.content") from None
        out = Completion(text=text)
        _usage(out, data)
        return out


def _usage(out: Completion, data: dict) -> None:
    usage = data.get("usage") or {}
    if isinstance(usage, dict):
        if usage.get("prompt_tokens") is not None:
            out.prompt_tokens = int(usage["prompt_tokens"])
        if usage.get("completion_tokens") is not None:
            out.completion_tokens = int(usage["completion_tokens"])


def _error_message(resp: httpx.Response) -> str:
    """The server's error message, short; never the request (which carried the key)."""
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg)[:200] if msg else resp.reason_phrase
    except (ValueError, AttributeError):
        return resp.reason_phrase
