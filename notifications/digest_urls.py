"""Digest links (unsubscribe): placeholder."""

urlpatterns: list[object] = []
