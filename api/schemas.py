"""Request shapes of the HTTP API (responses reuse ``qa.responses``), and the limits the
OpenAPI schema publishes from the settings (:func:`publish_limits`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from fastapi import FastAPI

    from qa.config import Settings


def _json_integer(value: object) -> object:
    """JSON Schema's integer: 3 (or 3.0), never true (which Python counts as 1) or "3"."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON integer, not a boolean or a string")
    return value


CONVERSATION_ID_PATTERN = r"^(cv_[A-Za-z0-9_-]{24})?$"


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"question": "k8s 和 Docker 是什么关系？", "top_k": 3}]})

    # no max_length here: the limit is QA_MAX_QUESTION_CHARS, checked by the runtime
    # (qa.limits.check_question) and published in the schema by publish_limits below
    question: str = Field(min_length=1, description="The question (Chinese or English).")
    # int with a None default (not int | None): absent means QA_TOP_K, an explicit null is refused
    top_k: Annotated[int, BeforeValidator(_json_integer)] = Field(
        None, ge=1, le=50,
        description="How many passages to cite (a JSON integer: true or \"3\" is refused); default QA_TOP_K.",
    )
    collection: str | None = Field(None, max_length=200, description="Only search this collection (default: all).")
    method: Literal["hybrid", "dense", "lexical"] = "hybrid"
    conversation_id: str | None = Field(
        None, max_length=64,
        # the form is published (clients and fuzzers send ids of it); the validator below says
        # what is wrong with any other
        json_schema_extra={"pattern": CONVERSATION_ID_PATTERN},
        description="Continue this conversation (from an earlier answer's conversation_id): follow-up "
        "questions such as '它怎么删除？' are searched with the earlier topic. Omit it to start one.",
    )

    @field_validator("conversation_id")
    @classmethod
    def _conversation_form(cls, v: str | None) -> str | None:
        from qa.conversations import check_id

        return None if v is None or v == "" else check_id(v)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        # kept as sent: the runtime strips it after counting its length the way the published
        # maxLength does (qa.limits.check_question)
        if not v.strip():
            raise ValueError("question is empty or only whitespace")
        return v


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    generation: str | None = None
    model: str | None = None
    reason: str | None = None


#: the routes that take the question as the query parameter ``q``
QUESTION_QUERY_PATHS = ("/ask", "/ask/stream")


def publish_limits(app: "FastAPI", settings: "Settings") -> None:
    """``/openapi.json`` says the question's real limit (QA_MAX_QUESTION_CHARS), for the body
    of POST /ask and the ``q`` of GET /ask and /ask/stream: the limit is a setting, so it
    cannot be written into the models above."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        limit = settings.max_question_chars
        body = schema.get("components", {}).get("schemas", {}).get("AskRequest")
        if body is not None:
            body["properties"]["question"]["maxLength"] = limit
        for path in QUESTION_QUERY_PATHS:
            for op in schema.get("paths", {}).get(path, {}).values():
                for param in op.get("parameters", []) if isinstance(op, dict) else []:
                    if param.get("in") == "query" and param.get("name") == "q":
                        param["schema"]["maxLength"] = limit
        return schema

    app.openapi = openapi
