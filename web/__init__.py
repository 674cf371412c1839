"""The coordinator console: a Flask app that reads the station's database and needs no internet."""

from web.app import create_app

__all__ = ["create_app"]
