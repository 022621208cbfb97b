from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "proxy"
    verbose_name = "Proxy"

    def ready(self) -> None:
        from proxy import checks  # noqa: F401  (registers the provider check)
