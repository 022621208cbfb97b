from __future__ import annotations

from rest_framework import serializers


class DateOrDateTimeField(serializers.Field):
    """``2024-06-01`` (a whole day) or an ISO 8601 datetime."""

    def to_internal_value(self, data):
        field = serializers.DateField() if len(str(data)) <= 10 else serializers.DateTimeField()
        try:
            return field.to_internal_value(data)
        except serializers.ValidationError:
            raise serializers.ValidationError("use YYYY-MM-DD or an ISO 8601 datetime") from None


class DateRangeSerializer(serializers.Serializer):
    start_date = DateOrDateTimeField(required=False)
    end_date = DateOrDateTimeField(required=False)


class SpendLogsQuerySerializer(DateRangeSerializer):
    request_id = serializers.CharField(required=False)
    api_key = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=10000)
