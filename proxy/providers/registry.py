"""Provider prefix (``openai/…``) → adapter class, imported only when a deployment uses it."""
from __future__ import annotations

from importlib import import_module

PROVIDERS = {
    "openai": "proxy.providers.openai_compatible.OpenAICompatible",
    "azure": "proxy.providers.azure.AzureOpenAI",
    "anthropic": "proxy.providers.anthropic.AnthropicProvider",
    "fake": "proxy.providers.fake.FakeProvider",
}


class UnknownProvider(LookupError):
    pass


def provider_class(prefix: str):
    try:
        dotted = PROVIDERS[prefix]
    except KeyError:
        raise UnknownProvider(
            f"unknown provider {prefix!r}; known providers: {', '.join(sorted(PROVIDERS))}") from None
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)
