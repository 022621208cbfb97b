"""``gateway_project.bootstrap``: what runs before settings, when AWS KMS decryption is off or misspelt
(decryption itself: test_aws_kms.py)."""
from __future__ import annotations

import os

import pytest

from gateway_project.bootstrap import prepare_environment


@pytest.mark.parametrize("setting", [None, "False", "0", ""])
def test_without_use_aws_kms_the_environment_is_left_alone(monkeypatch, setting):
    if setting is None:
        monkeypatch.delenv("USE_AWS_KMS", raising=False)
    else:
        monkeypatch.setenv("USE_AWS_KMS", setting)
    monkeypatch.setenv("LITELLM_SECRET_AWS_KMS_UNTOUCHED", "AQICAHciphertext")

    prepare_environment()

    assert os.environ["LITELLM_SECRET_AWS_KMS_UNTOUCHED"] == "AQICAHciphertext"
    assert "UNTOUCHED" not in os.environ


def test_a_use_aws_kms_that_is_not_a_boolean_stops_start_up(monkeypatch):
    monkeypatch.setenv("USE_AWS_KMS", "sometimes")

    with pytest.raises(SystemExit) as stop:
        prepare_environment()

    assert "USE_AWS_KMS must be a boolean" in str(stop.value.code)


def test_use_aws_kms_with_nothing_to_decrypt_starts_without_calling_kms(monkeypatch):
    monkeypatch.setenv("USE_AWS_KMS", "True")
    for name in [n for n in os.environ if n.upper().startswith("LITELLM_SECRET_AWS_KMS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a call to KMS would fail

    prepare_environment()
