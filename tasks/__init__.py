"""What Celery runs: thin tasks that call into `notifications/`."""
