"""The notifications API: placeholder."""

urlpatterns: list[object] = []
