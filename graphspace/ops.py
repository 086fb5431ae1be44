"""Operations endpoints (/healthz, /metrics): placeholder."""

urlpatterns: list[object] = []
