from django.urls import path, re_path

from notifications import views

urlpatterns = [
    path("", views.page, name="notifications"),
    path("preferences/", views.preferences_page, name="notification-preferences"),
    path("preferences/mute/", views.mute_page, name="notification-mute"),
    re_path(r"^open/(?P<topic>owner|group|watching)/(?P<pk>\d+)/$", views.open_item, name="notification-open"),
]
