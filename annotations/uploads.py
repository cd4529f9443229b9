"""An upload handler that stops a file at IMPORT_MAX_UPLOAD_BYTES while it streams in.

The import form also checks the size, but only once the whole file has been written to a
temporary file; this handler, first in FILE_UPLOAD_HANDLERS, skips the file (its partial
temporary file is deleted) as soon as it passes the limit, so a huge upload never fills the
disk. The view turns the mark it leaves on the request into a form error.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile


class UploadSizeLimitHandler(FileUploadHandler):
    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.IMPORT_MAX_UPLOAD_BYTES:
            if self.request is not None:
                self.request.upload_refused = self.file_name  # type: ignore[attr-defined]
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler stores the file
