from django.urls import path, re_path

from notifications import views

urlpatterns = [
    path("", views.page, name="notifications"),
    re_path(r"^open/(?P<topic>owner|group)/(?P<pk>\d+)/$", views.open_item, name="notification-open"),
]
