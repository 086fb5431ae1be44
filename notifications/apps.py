from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        # In every process, so that a logout in web and a password set from a shell
        # (manage.py changepassword) both end the sockets of what they ended.
        from django.conf import settings
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_save

        from notifications import sessions

        user_logged_out.connect(sessions.on_logged_out, dispatch_uid="notifications.sessions.logged_out")
        post_save.connect(sessions.on_user_saved, sender=settings.AUTH_USER_MODEL,
                          dispatch_uid="notifications.sessions.user_saved")
