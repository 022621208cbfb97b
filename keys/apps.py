from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Virtual keys"

    def ready(self) -> None:
        from keys import cache  # noqa: F401  (connects cache invalidation to model writes)
