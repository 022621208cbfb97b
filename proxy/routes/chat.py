"""/chat/completions and its aliases: parse → pipeline → respond."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Router

from proxy.pipeline import run_chat
from proxy.pipeline.context import RequestContext
from proxy.schemas import ChatCompletionRequest

router = Router(tags=["chat/completions"])

_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


async def chat_completions(request: HttpRequest) -> HttpResponse:
    """Create a chat completion (OpenAI-compatible); ``"stream": true`` answers with server-sent events."""
    return await run_chat(RequestContext(request=request, call_type="chat"), request.body)


for _path, _operation in (("/chat/completions", "chat_completions"), ("/v1/chat/completions", "v1_chat_completions")):
    router.add_api_operation(_path, ["POST"], chat_completions, operation_id=_operation, openapi_extra=_BODY,
                             summary="Chat completions")
