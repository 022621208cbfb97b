#!/usr/bin/env python
"""Django's command-line utility for the gateway."""
import os
import sys


def main() -> None:
    from gateway_project.bootstrap import prepare_environment

    prepare_environment()  # USE_AWS_KMS decryption: before settings read DATABASE_URL and the master key
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
