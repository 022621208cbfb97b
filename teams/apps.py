from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    verbose_name = "Teams, users and customers"

    def ready(self) -> None:
        from teams import cache  # noqa: F401  (connects cache invalidation to model writes)
