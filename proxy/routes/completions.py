"""/completions and /embeddings: parse → pipeline → respond."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Router

from proxy.pipeline import run
from proxy.pipeline.context import RequestContext
from proxy.routes.docs import request_body
from proxy.schemas import CompletionRequest, EmbeddingRequest, validate_completion, validate_embedding

router = Router(tags=["completions", "embeddings"])


async def completions(request: HttpRequest) -> HttpResponse:
    """Create a text completion (OpenAI's legacy completions API)."""
    return await run(RequestContext(request=request, call_type="completion"), request.body, validate_completion)


async def embeddings(request: HttpRequest) -> HttpResponse:
    """Create embeddings."""
    return await run(RequestContext(request=request, call_type="embedding"), request.body, validate_embedding)


async def deployment_embeddings(request: HttpRequest, model: str) -> HttpResponse:
    return await run(RequestContext(request=request, call_type="embedding"), request.body, validate_embedding,
                     model=model)


for _path, _operation in (("/completions", "completions"), ("/v1/completions", "v1_completions")):
    router.add_api_operation(_path, ["POST"], completions, operation_id=_operation,
                             openapi_extra=request_body(CompletionRequest), summary="Completions")
for _path, _operation in (("/embeddings", "embeddings"), ("/v1/embeddings", "v1_embeddings")):
    router.add_api_operation(_path, ["POST"], embeddings, operation_id=_operation,
                             openapi_extra=request_body(EmbeddingRequest), summary="Embeddings")
router.add_api_operation("/openai/deployments/{model}/embeddings", ["POST"], deployment_embeddings,
                         operation_id="azure_embeddings", openapi_extra=request_body(EmbeddingRequest),
                         summary="Embeddings (model in the path)")
