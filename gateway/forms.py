"""A file sent as an HTML form (`multipart/form-data`: `curl -F file=@claims.csv`, a browser's
file form): its one file part is the file, streamed as it arrives, and its file name the
upload's unless the request names one. Read by python-multipart's streaming parser; a form
with anything but the file, or one cut short, is refused saying so."""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from runtime import errors

FORM_DATA = b"multipart/form-data"
# Part headers a file part needs are a few: its Content-Disposition and Content-Type.
_MAX_PART_HEADERS = 8
_FIELD = "body"


def form_boundary(content_type: str) -> bytes | None:
    """The boundary of a `multipart/form-data` body (None: the body is not a form)."""
    kind, options = parse_options_header(content_type)
    if kind != FORM_DATA:
        return None
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise _refused("Content-Type multipart/form-data names no boundary")
    return boundary


def _refused(description: str) -> errors.ApiError:
    return errors.invalid_argument(
        f"{_FIELD}: {description}", errors.FieldViolation(_FIELD, description)
    )


class FileForm:
    """A form's bytes in, its file part's bytes out (`feed`), in order. `file_name` and
    `content_type` are the file part's once `started`."""

    def __init__(self, boundary: bytes) -> None:
        self.file_name = ""
        self.content_type = ""
        self.started = False
        self._ended = False
        self._after_file = False
        self._problem: errors.ApiError | None = None
        self._data: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begins,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_ends,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_ends,
                "on_end": self._form_ends,
            },
            max_header_count=_MAX_PART_HEADERS,
        )

    def feed(self, chunk: bytes) -> bytes:
        """The file's bytes in `chunk` (none before its part begins or after it ends)."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise _refused(f"the form cannot be read ({exc})") from None
        if self._problem is not None:
            raise self._problem
        data, self._data = b"".join(self._data), []
        return data

    def close(self) -> None:
        """Raises unless the form held its file and ended whole."""
        if not self.started:
            raise _refused("the form has no file part: send the file as a part with a filename")
        if not self._ended:
            raise _refused("the form ends before its closing boundary: it was cut short")

    def _part_begins(self) -> None:
        if self._after_file and self._problem is None:
            self._problem = _refused(
                "the form goes on after its file: send one file, and give options as query "
                "parameters"
            )
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_ends(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        if self._problem is not None:
            return
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"filename" not in disposition:
            name = disposition.get(b"name", b"").decode("utf-8", "replace")
            self._problem = _refused(
                f"form field {name!r}: a form may hold the file only; give options as query "
                "parameters (e.g. ?upload.mode=ALL_OR_NOTHING)"
            )
            return
        self.started = True
        self.file_name = disposition[b"filename"].decode("utf-8", "replace")
        self.content_type = self._headers.get(b"content-type", b"").decode("latin-1")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.started and not self._after_file:
            self._data.append(data[start:end])

    def _part_ends(self) -> None:
        if self.started:
            self._after_file = True

    def _form_ends(self) -> None:
        self._ended = True


async def file_of_form(
    form: FileForm, body: AsyncIterator[bytes]
) -> tuple[bytes, AsyncIterator[bytes]]:
    """Reads `body` until the form's file part begins (so that its name is known before the
    file is sent on): the file's first bytes, and an iterator of the rest of them."""
    async for chunk in body:
        data = form.feed(chunk)
        if form.started:
            return data, _rest(form, body)
    form.close()
    raise AssertionError("unreachable: close raises for a form without its file")


async def _rest(form: FileForm, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        if data := form.feed(chunk):
            yield data
    form.close()
