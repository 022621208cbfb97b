from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit trail. Apps register their models in their own ``ready()``
    (``gateway_project.audit.registry.register``); this app records, serves, verifies and prunes."""

    name = "gateway_project.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from gateway_project.audit import registry

        registry.connect()
