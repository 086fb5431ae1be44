from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from graphspace import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="graphspace/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/login/"), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("graphspace.api.urls")),
]
