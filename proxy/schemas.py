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


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    body = parse_json_object(raw)
    model = require(body, "model", str, "a string")
    if not model:
        raise InvalidRequestError("Invalid value for 'model': it must not be empty.", param="model")
    messages = require(body, "messages", list, "an array")
    if not messages:
        raise InvalidRequestError("Invalid value for 'messages': it must contain at least one message.",
                                  param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"Invalid value for 'messages[{index}]': expected an object with a string 'role'.", param="messages")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequestError(f"Invalid type for 'stream': expected a boolean, but got {_kind(body['stream'])} "
                                  "instead.", param="stream")
    if "user" in body and body["user"] is not None and not isinstance(body["user"], str):
        raise InvalidRequestError(f"Invalid type for 'user': expected a string, but got {_kind(body['user'])} "
                                  "instead.", param="user")
    return body
