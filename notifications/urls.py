"""The notifications page: placeholder."""

urlpatterns: list[object] = []
