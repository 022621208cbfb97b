"""Wire-format request schemas of the OpenAI endpoints.

The pydantic models document the endpoints in the OpenAPI schema. Requests are not parsed through
them (a model per request costs more than the whole rest of the hot path); ``parse_chat_request``
checks the few fields the gateway relies on and passes everything else through untouched.
"""
from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway_project.errors import InvalidRequestError

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null"}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; any other OpenAI parameter is passed to the provider."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="A model_name from the gateway's model_list")
    messages: list[ChatMessage]
    stream: bool = False
    user: str | None = Field(default=None, description="End-user id: spend, budgets and blocked-user checks")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Gateway-only: tags, spend_logs_metadata, generation_name… (not forwarded)")


class CompletionRequest(BaseModel):
    """OpenAI's (legacy) text completion request."""

    model_config = ConfigDict(extra="allow")
    model: str
    prompt: str | list[str]
    user: str | None = None
    metadata: dict[str, Any] | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    user: str | None = None
    metadata: dict[str, Any] | None = None


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"Invalid JSON payload: {exc}", param="request_body") from None
    if not isinstance(body, dict):
        raise InvalidRequestError(f"Invalid JSON payload: expected an object, got {_kind(body)}", param="request_body")
    return body


def require(body: dict[str, Any], name: str, expected: type, description: str) -> Any:
    if name not in body or body[name] is None:
        raise InvalidRequestError(f"Missing required parameter: '{name}'.", param=name)
    value = body[name]
    if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
        raise InvalidRequestError(
            f"Invalid type for '{name}': expected {description}, but got {_kind(value)} instead.", param=name)
    return value


def _model(body: dict[str, Any]) -> None:
    if not require(body, "model", str, "a string"):
        raise InvalidRequestError("Invalid value for 'model': it must not be empty.", param="model")


def _optional(body: dict[str, Any], name: str, expected: type, description: str) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, expected) or isinstance(value, bool) and expected is not bool):
        raise InvalidRequestError(f"Invalid type for '{name}': expected {description}, but got {_kind(value)} "
                                  "instead.", param=name)


def validate_chat(body: dict[str, Any]) -> dict[str, Any]:
    _model(body)
    messages = require(body, "messages", list, "an array")
    if not messages:
        raise InvalidRequestError("Invalid value for 'messages': it must contain at least one message.",
                                  param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"Invalid value for 'messages[{index}]': expected an object with a string 'role'.", param="messages")
    _optional(body, "stream", bool, "a boolean")
    _optional(body, "user", str, "a string")
    return body


def validate_completion(body: dict[str, Any]) -> dict[str, Any]:
    _model(body)
    prompt = require(body, "prompt", (str, list), "a string or an array")
    if isinstance(prompt, list) and not prompt:
        raise InvalidRequestError("Invalid value for 'prompt': it must not be empty.", param="prompt")
    if body.get("stream") is True:
        raise InvalidRequestError("Streaming is not supported on /completions; use /chat/completions.",
                                  param="stream")
    _optional(body, "user", str, "a string")
    return body


def validate_embedding(body: dict[str, Any]) -> dict[str, Any]:
    _model(body)
    value = require(body, "input", (str, list), "a string or an array")
    if isinstance(value, list) and not value:
        raise InvalidRequestError("Invalid value for 'input': it must not be empty.", param="input")
    _optional(body, "user", str, "a string")
    return body
