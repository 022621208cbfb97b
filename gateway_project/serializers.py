"""DRF fields shared by the management APIs of several apps."""
from __future__ import annotations

import ipaddress

from rest_framework import serializers

from gateway_project.durations import InvalidDuration, parse_duration


class DurationField(serializers.CharField):
    """``30s``, ``30m``, ``30h``, ``30d``, ``1mo``."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            parse_duration(value)
        except InvalidDuration as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class IpNetworkField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise serializers.ValidationError(f"{value!r} is not an IP address or network") from None
        return value


def string_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(allow_blank=False), **kwargs)


class BudgetFieldsSerializer(serializers.Serializer):
    """Budget and rate-limit fields that keys, teams, users and customers share."""

    max_budget = serializers.FloatField(required=False, allow_null=True, min_value=0)
    budget_duration = DurationField(required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    rpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    max_parallel_requests = serializers.IntegerField(required=False, allow_null=True, min_value=0)


def validated(serializer_class, data) -> dict:
    """``data`` checked by ``serializer_class``: its validated fields, or a 400 naming the bad ones."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
