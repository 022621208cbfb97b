from __future__ import annotations

from rest_framework import serializers

from gateway_project.serializers import BudgetFieldsSerializer, DurationField, IpNetworkField, string_list


class KeyFieldsSerializer(BudgetFieldsSerializer):
    """Settings of a key, shared by /key/generate and /key/update. Absent fields are left alone."""

    key_alias = serializers.CharField(required=False, allow_null=True, max_length=255)
    duration = DurationField(required=False, allow_null=True)
    models = string_list(required=False)
    spend = serializers.FloatField(required=False, min_value=0)
    user_id = serializers.CharField(required=False, allow_null=True, max_length=150)
    team_id = serializers.CharField(required=False, allow_null=True, max_length=128)
    metadata = serializers.DictField(required=False)
    permissions = serializers.DictField(required=False)
    model_max_budget = serializers.DictField(required=False)
    model_rpm_limit = serializers.DictField(required=False)
    model_tpm_limit = serializers.DictField(required=False)
    guardrails = string_list(required=False)
    blocked = serializers.BooleanField(required=False)
    aliases = serializers.DictField(required=False)
    config = serializers.DictField(required=False)
    allowed_routes = string_list(required=False)
    enforced_params = string_list(required=False)
    allowed_ips = serializers.ListField(child=IpNetworkField(), required=False)
    tags = string_list(required=False)
    soft_budget = serializers.FloatField(required=False, allow_null=True, min_value=0)


class KeyGenerateSerializer(KeyFieldsSerializer):
    key = serializers.CharField(required=False, min_length=8, max_length=255)


class KeyUpdateSerializer(KeyFieldsSerializer):
    key = serializers.CharField(max_length=255)
    expires = serializers.DateTimeField(required=False, allow_null=True)


class KeyDeleteSerializer(serializers.Serializer):
    keys = string_list(required=False)
    key_aliases = string_list(required=False)


class KeyListQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(required=False, default=1, min_value=1)
    size = serializers.IntegerField(required=False, default=10, min_value=1, max_value=100)
    user_id = serializers.CharField(required=False)
    team_id = serializers.CharField(required=False)
    key_alias = serializers.CharField(required=False)
    key_hash = serializers.CharField(required=False)
    return_full_object = serializers.BooleanField(required=False, default=False)


class KeyBlockSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=255)


class KeyRegenerateSerializer(KeyUpdateSerializer):
    """The key comes in the body, as ``?key=`` or in the path; settings as for /key/update."""

    key = serializers.CharField(required=False, max_length=255)
    new_key = serializers.CharField(required=False, min_length=8, max_length=255)
    grace_period = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate_grace_period(self, value):
        if value:
            raise serializers.ValidationError("Not supported: the old key stops working as soon as the new one "
                                              "is issued. Send the request without grace_period.")
        return value
