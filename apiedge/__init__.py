"""The JSON-API edge the site's two APIs share (the REST API v1, graphspace/api/, and the
notifications API, notifications/api.py): GraphSpace's error body and codes (errors.py), one
view per URL with HTTP Basic or session authentication (http.py), and the request-schema base
types and body reader (schemas.py).

It imports no app, so that both can use it without importing each other: each API passes its
own mapping of its domain errors to `http.api_view(methods, translate=...)`.
"""
