from tests.http.conftest import authed, client, dispatcher, store

__all__ = ["authed", "client", "dispatcher", "store"]
