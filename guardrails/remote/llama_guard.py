"""llamaguard_moderations: the conversation is judged by Llama Guard on an AWS SageMaker endpoint
(``llamaguard_model_name: sagemaker/<endpoint name>``); a verdict starting "unsafe" refuses it.

The prompt is Llama Guard's own format: the unsafe-content categories (the model's defaults, in
``llamaguard_categories.txt`` beside this file, or ``llamaguard_unsafe_content_categories``) and the
conversation's user and assistant turns. boto3 is imported only when this guardrail is configured;
its calls are synchronous, so they run in a worker thread. Credentials, region and endpoint come
from boto3's usual sources (``AWS_ACCESS_KEY_ID``…, ``AWS_REGION_NAME``/``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from gateway_project.config import ConfigError, GatewayConfig
from guardrails.base import Call, FailurePolicy, Guardrail, GuardrailBlocked, logger
from guardrails.config import config_path, env_setting, failure_policy
from guardrails.texts import conversation

DEFAULT_CATEGORIES = Path(__file__).with_name("llamaguard_categories.txt")
PROMPT = """[INST] Task: Check if there is unsafe content in 'User' messages in conversations according our \
safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{conversation}

<END CONVERSATION>

Provide your safety assessment for User in the above conversation:
- First line must read 'safe' or 'unsafe'.
- If unsafe, a second line must include a comma-separated list of violated categories. [/INST]"""
_ROLES = {"user": "User", "assistant": "Agent"}


def build_prompt(categories: str, turns: list[tuple[str, str]]) -> str:
    lines = "\n\n".join(f"{_ROLES[role]}: {text}" for role, text in turns if role in _ROLES)
    return PROMPT.format(categories=categories.strip(), conversation=lines)


def parse_verdict(answer: Any, prompt: str) -> str:
    """The generated text of a SageMaker (TGI / JumpStart) answer, without an echoed prompt."""
    if isinstance(answer, list) and answer:
        answer = answer[0]
    if not isinstance(answer, dict):
        raise ValueError("not a JSON object")
    text = answer.get("generated_text", answer.get("generation"))
    if not isinstance(text, str):
        raise ValueError("no generated_text")
    return text.removeprefix(prompt).strip()


class LlamaGuard(Guardrail):
    name = "llamaguard_moderations"
    remote = True

    def __init__(self, *, endpoint: str, categories: str, client: Any, errors: tuple[type[Exception], ...],
                 policy: FailurePolicy) -> None:
        self.endpoint = endpoint
        self.categories = categories
        self.client = client   # a boto3 sagemaker-runtime client (thread-safe)
        self.errors = (*errors, ValueError, KeyError)   # botocore's, and those of a broken answer
        self.policy = policy

    @classmethod
    def from_config(cls, config: GatewayConfig) -> LlamaGuard:
        settings = config.litellm_settings
        model = settings.llamaguard_model_name or ""
        provider, _, endpoint = model.partition("/")
        if provider != "sagemaker" or not endpoint:
            raise ConfigError(f"{config.source}: litellm_settings.llamaguard_model_name must be "
                              f"'sagemaker/<endpoint name>', got {model!r}")
        client, errors = _sagemaker_client(config, settings.guardrail_timeout)
        return cls(endpoint=endpoint, categories=_categories(config), client=client, errors=errors,
                   policy=failure_policy(config, cls.name, settings.llamaguard_failure_mode))

    async def pre_call(self, call: Call) -> None:
        turns = conversation(call.body)
        if not turns:
            return
        prompt = build_prompt(self.categories, turns)
        verdict = await self._judge(prompt)
        if verdict is None:
            return
        logger.info("LlamaGuard: %s verdict - %r", self.endpoint, verdict)
        first, _, categories = verdict.partition("\n")
        if first.strip().lower().startswith("unsafe"):
            raise GuardrailBlocked(f"Violated content safety policy. Guardrail={self.name}, "
                                   f"categories={categories.strip() or 'unspecified'}")

    async def _judge(self, prompt: str) -> str | None:
        payload = orjson.dumps({"inputs": prompt, "parameters": {"max_new_tokens": 20, "return_full_text": False}})
        try:
            answer = await asyncio.to_thread(self._invoke, payload)
            return parse_verdict(orjson.loads(answer), prompt)
        except self.errors as exc:
            self.policy.unavailable(f"SageMaker endpoint {self.endpoint} failed ({type(exc).__name__})", str(exc))
            return None

    def _invoke(self, payload: bytes) -> bytes:
        response = self.client.invoke_endpoint(EndpointName=self.endpoint, ContentType="application/json",
                                               Accept="application/json", Body=payload)
        return response["Body"].read()


def _categories(config: GatewayConfig) -> str:
    custom = config.litellm_settings.llamaguard_unsafe_content_categories
    path = config_path(config, custom) if custom else DEFAULT_CATEGORIES
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{config.source}: litellm_settings.llamaguard_unsafe_content_categories: cannot read "
                          f"{path}: {exc.strerror}") from None


def _sagemaker_client(config: GatewayConfig, timeout: float) -> tuple[Any, tuple[type[Exception], ...]]:
    """A sagemaker-runtime client, and the exceptions its calls raise."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

    # One attempt: the failure policy, not a retry loop, decides what an outage means.
    retry = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"})
    try:
        client = boto3.session.Session().client("sagemaker-runtime", config=retry,
                                                 region_name=env_setting(config, "AWS_REGION_NAME"))
    except NoRegionError:
        raise ConfigError(f"{config.source}: llamaguard_moderations needs an AWS region: set AWS_REGION_NAME "
                          "(or AWS_DEFAULT_REGION)") from None
    return client, (BotoCoreError, ClientError)
