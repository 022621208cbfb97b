import logging

from django.apps import AppConfig
from django.db import OperationalError
from django.db.models.signals import post_migrate

logger = logging.getLogger("gateway.jobs")


class SpendConfig(AppConfig):
    name = "spend"
    verbose_name = "Spend"

    def ready(self) -> None:
        post_migrate.connect(_ensure_partitions, sender=self)


def _ensure_partitions(sender, using: str = "default", **kwargs) -> None:
    """After ``migrate``: the spend log's partitions of this month and the next ones exist (PostgreSQL)."""
    from spend import partitions

    try:
        partitions.ensure_partitions(using=using)
    except OperationalError as exc:  # a lock not granted in time: the periodic job creates them later
        logger.warning("partitions: not created after migrate (%s); the spend-partitions-ensure job will", exc)
