"""A real OpenID Connect provider for the admin SSO tests: a separate, minimal Django project built on
django-oauth-toolkit (``python -m tests.idp --help``; ``launch.py`` starts it from a fixture).

It has its own settings (``tests.idp.settings``) and its own SQLite file, and never touches the
gateway's settings or database. Importing this package imports nothing from Django.
"""
