"""Test overrides only, on top of the real settings (the database comes from DATABASE_URL)."""
import os

os.environ.setdefault("GATEWAY_MASTER_KEY", "sk-test-master-key")

from gateway_project.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests write spend rows and read them back; flush quickly.
GATEWAY_SPEND_FLUSH_INTERVAL = 0.05
