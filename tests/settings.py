"""Test overrides only, on top of the real settings (the database comes from DATABASE_URL)."""
import os

# Hermetic: whatever the shell exports, the suite uses its own master key and the demo config.
os.environ["GATEWAY_MASTER_KEY"] = "sk-test-master-key"
os.environ.pop("GATEWAY_CONFIG", None)

from gateway_project.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests write spend rows and read them back; flush quickly.
GATEWAY_SPEND_FLUSH_INTERVAL = 0.05
