from tests.http.conftest import authed, client, dispatcher

__all__ = ["authed", "client", "dispatcher"]
