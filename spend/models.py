"""The request ledger: one SpendLog row per proxied request, success or failure.

Rows name keys, teams and users by id only (no foreign keys): the ledger outlives what it records.
"""
from __future__ import annotations

from django.db import models


class SpendStatus(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class SpendLog(models.Model):
    # The gateway's own id for the call (x-litellm-call-id): unique by construction, so a replayed
    # batch is written once. Not the provider's response id: an upstream may reuse those.
    call_id = models.CharField(max_length=64, primary_key=True)
    # The id the client saw: the provider's response id, or the call id when there was no response.
    request_id = models.CharField(max_length=255)
    call_type = models.CharField(max_length=32)
    api_key = models.CharField(max_length=64, blank=True, default="", help_text="key digest")
    key_alias = models.CharField(max_length=255, null=True, blank=True)
    team_id = models.CharField(max_length=128, null=True, blank=True)
    user = models.CharField(max_length=255, null=True, blank=True)
    end_user = models.CharField(max_length=255, null=True, blank=True)
    model = models.CharField(max_length=255, blank=True, default="")
    model_group = models.CharField(max_length=255, blank=True, default="")
    model_id = models.CharField(max_length=64, blank=True, default="")
    custom_llm_provider = models.CharField(max_length=64, blank=True, default="")
    api_base = models.CharField(max_length=512, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    # USD; null when the model has no known price (recorded as unknown, never as free).
    spend = models.FloatField(null=True, blank=True)
    start_time = models.DateTimeField(db_index=True)
    end_time = models.DateTimeField()
    completion_start_time = models.DateTimeField(null=True, blank=True)
    request_tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    requester_ip_address = models.CharField(max_length=64, null=True, blank=True)
    status = models.CharField(max_length=16, choices=SpendStatus.choices)

    class Meta:
        ordering = ["-start_time"]
        # What the reports, /spend/logs and the admin filter by, each with the time range they carry.
        # On PostgreSQL the table is partitioned by month (migration 0005, spend/partitions.py): the
        # primary key there is (call_id, start_time), and each index exists in every partition.
        indexes = [models.Index(fields=["api_key", "start_time"], name="spendlog_key_time"),
                   models.Index(fields=["team_id", "start_time"], name="spendlog_team_time"),
                   models.Index(fields=["user", "start_time"], name="spendlog_user_time"),
                   models.Index(fields=["end_user", "start_time"], name="spendlog_customer_time"),
                   models.Index(fields=["request_id"], name="spendlog_request_id")]

    def __str__(self) -> str:
        return self.request_id

    @property
    def request_duration_ms(self) -> int:
        return int((self.end_time - self.start_time).total_seconds() * 1000)


class SpendLogTag(models.Model):
    """One row per (request, tag): lets ``/spend/tags`` group and sum on any database."""

    # No index of its own: the unique constraint's index starts with it.
    spend_log = models.ForeignKey(SpendLog, on_delete=models.CASCADE, related_name="tag_rows", db_constraint=False,
                                  db_index=False)
    tag = models.CharField(max_length=255)
    spend = models.FloatField(null=True, blank=True)
    start_time = models.DateTimeField()

    class Meta:
        # On PostgreSQL (partitioned) the database's unique key is (spend_log, tag, start_time).
        constraints = [models.UniqueConstraint(fields=["spend_log", "tag"], name="spendlogtag_unique")]
        indexes = [models.Index(fields=["tag", "start_time"], name="spendlogtag_tag_time")]


class SpendDaily(models.Model):
    """The ledger rolled up per day × key × team × user × end user × model × tag (``spend.services``).

    Rows with ``tag == ""`` count every request once: sum those for totals. A row with a tag counts
    the requests that carried it, so a request with two tags is in both; sum those per tag only.
    Absent ids are stored as "" (not NULL), and ``grain`` (a digest of every dimension) keeps the
    unique key short enough to index on any database.
    """

    day = models.DateField()
    grain = models.CharField(max_length=64, help_text="sha256 of the dimensions below")
    api_key = models.CharField(max_length=64, blank=True, default="", help_text="key digest")
    team_id = models.CharField(max_length=128, blank=True, default="")
    user = models.CharField(max_length=255, blank=True, default="")
    end_user = models.CharField(max_length=255, blank=True, default="")
    model_group = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=255, blank=True, default="")
    tag = models.CharField(max_length=255, blank=True, default="")
    requests = models.PositiveIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    spend = models.FloatField(default=0.0, help_text="USD; requests of unknown price count as 0")
    # The same sum done in Decimal from each row's recorded value: what reports read (exact to the cent).
    spend_exact = models.DecimalField(max_digits=28, decimal_places=12, default=0,
                                      help_text="USD, summed exactly; unknown-price requests excluded")
    unknown_price_requests = models.PositiveIntegerField(default=0, help_text="requests with no known price")
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "daily spend"
        constraints = [models.UniqueConstraint(fields=["day", "grain"], name="spenddaily_grain")]
        indexes = [models.Index(fields=["team_id", "day"], name="spenddaily_team_day"),
                   models.Index(fields=["api_key", "day"], name="spenddaily_key_day"),
                   models.Index(fields=["end_user", "day"], name="spenddaily_customer_day"),
                   models.Index(fields=["tag", "day"], name="spenddaily_tag_day")]
