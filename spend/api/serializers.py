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


class SpendReportQuerySerializer(serializers.Serializer):
    """``/global/spend/report``: a whole-day range (at most ``MAX_REPORT_DAYS``), a grouping, filters."""

    start_date = serializers.DateField(input_formats=["%Y-%m-%d"])
    end_date = serializers.DateField(input_formats=["%Y-%m-%d"])
    group_by = serializers.ChoiceField(choices=["team", "customer", "api_key", "tag", "model", "day"], default="team")
    format = serializers.ChoiceField(choices=["json", "csv"], default="json")
    api_key = serializers.CharField(required=False)
    internal_user_id = serializers.CharField(required=False)
    team_id = serializers.CharField(required=False)
    customer_id = serializers.CharField(required=False)

    def validate(self, attrs):
        from spend.spend_report import MAX_REPORT_DAYS

        if attrs["end_date"] < attrs["start_date"]:
            raise serializers.ValidationError({"end_date": "must not be before start_date"})
        if (attrs["end_date"] - attrs["start_date"]).days + 1 > MAX_REPORT_DAYS:
            raise serializers.ValidationError({"end_date": f"a report spans at most {MAX_REPORT_DAYS} days"})
        return attrs


class DailyActivityQuerySerializer(serializers.Serializer):
    """``/team/daily/activity`` and ``/tag/daily/activity``."""

    start_date = serializers.DateField(input_formats=["%Y-%m-%d"])
    end_date = serializers.DateField(input_formats=["%Y-%m-%d"])
    team_ids = serializers.CharField(required=False, help_text="comma-separated")
    tags = serializers.CharField(required=False, help_text="comma-separated")
    model = serializers.CharField(required=False)
    api_key = serializers.CharField(required=False)

    validate = SpendReportQuerySerializer.validate
