"""Pages and JSON gzipped for browsers that accept it (static files come compressed already, from
WhiteNoise). A long conversation's page is mostly its messages' text, which shrinks to a third.

Django's GZipMiddleware pads each response with random bytes against BREACH, and the secrets a
page holds (the CSRF token) are masked afresh per response. Files (attachments, exports of
files) are left alone: images and audio do not shrink, and they are not worth the CPU.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware

COMPRESSED_TYPES = frozenset({"text/html", "application/json"})


class PageGZipMiddleware(GZipMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        content_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type not in COMPRESSED_TYPES:
            return response
        return super().process_response(request, response)
