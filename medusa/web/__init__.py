"""Environment hooks for web frameworks: a database per runner, prepared once per build.

    from medusa.web import django as medusa_django    # or: flask as medusa_flask

    def setup_worker(ctx):
        medusa_django.setup_worker(ctx)
    ...

`medusa setup --django` / `--flask` write such a medusa/environment.py.
"""
