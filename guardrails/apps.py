from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "guardrails"

    def ready(self) -> None:
        from guardrails import checks  # noqa: F401  (registers the guardrail check)
