"""/chat/completions and its aliases: parse → pipeline → respond."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Router

from proxy.pipeline import run
from proxy.pipeline.context import RequestContext
from proxy.routes.docs import request_body
from proxy.schemas import ChatCompletionRequest, validate_chat

router = Router(tags=["chat/completions"])
_BODY = request_body(ChatCompletionRequest)


async def chat_completions(request: HttpRequest) -> HttpResponse:
    """Create a chat completion (OpenAI-compatible); ``"stream": true`` answers with server-sent events."""
    return await run(RequestContext(request=request, call_type="chat"), request.body, validate_chat)


async def deployment_chat_completions(request: HttpRequest, model: str) -> HttpResponse:
    """Azure OpenAI's path shape: the model (deployment) is named in the path."""
    return await run(RequestContext(request=request, call_type="chat"), request.body, validate_chat, model=model)


for _path, _operation in (("/chat/completions", "chat_completions"), ("/v1/chat/completions", "v1_chat_completions")):
    router.add_api_operation(_path, ["POST"], chat_completions, operation_id=_operation, openapi_extra=_BODY,
                             summary="Chat completions")
for _path, _operation in (("/openai/deployments/{model}/chat/completions", "azure_chat_completions"),
                          ("/engines/{model}/chat/completions", "engines_chat_completions")):
    router.add_api_operation(_path, ["POST"], deployment_chat_completions, operation_id=_operation,
                             openapi_extra=_BODY, summary="Chat completions (model in the path)")
