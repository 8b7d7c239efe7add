"""A file's bytes to the plain text that file search chunks and indexes.

:func:`extract_text` picks a reader by the file name's extension (and, for a name without one,
by sniffing the bytes): plain text, Markdown and source code are decoded; HTML keeps its visible
text; JSON is pretty-printed with its keys; CSV rows become ``column: value`` lines; PDF pages
(pypdf), DOCX paragraphs and tables (python-docx) and notebook cells are extracted. Paragraphs
are separated by blank lines, so that the chunker can cut between them.

Two errors, whose messages name the file, say what is wrong and what to do; the indexing job
records them as the file's ``last_error``:

- :class:`UnsupportedFile` (``unsupported_file``): a type file search does not read;
- :class:`InvalidFile` (``invalid_file``): a supported type whose content cannot be read, or
  that holds no text.

The functions are CPU-bound and synchronous: callers run them in a thread. The format libraries
are imported by the reader that needs them, so that starting the server does not load them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

__all__ = ["SUPPORTED_EXTENSIONS", "InvalidFile", "UnsupportedFile", "extract_text"]


class UnsupportedFile(Exception):
    """The file's type is not one file search reads (see :data:`SUPPORTED_EXTENSIONS`)."""


class InvalidFile(Exception):
    """The file claims a supported type but its content cannot be read, or it has no text."""


# Read as text, as they are: prose, markup and source code.
_TEXT_EXTENSIONS = frozenset(
    {
        ".txt", ".text", ".md", ".markdown", ".rst", ".adoc", ".tex", ".log",
        ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".scala",
        ".c", ".h", ".cpp", ".cc", ".cxx", ".hpp", ".cs", ".go", ".rs", ".rb", ".php",
        ".swift", ".r", ".jl", ".lua", ".pl", ".sh", ".bash", ".zsh", ".ps1", ".sql",
        ".css", ".scss", ".xml", ".yaml", ".yml", ".toml", ".ini", ".cfg",
    }
)  # fmt: skip

_SUMMARY_LIMIT = 12  # extensions named in an UnsupportedFile message before "…"


def _read_text(data: bytes, filename: str) -> str:
    return _decode(data, filename)


def _read_html(data: bytes, filename: str) -> str:
    return _html_text(data)


def _read_json(data: bytes, filename: str) -> str:
    try:
        value = json.loads(_decode(data, filename))
    except json.JSONDecodeError as exc:
        raise InvalidFile(
            f"{filename}: not valid JSON ({exc}); fix it, or upload it as .txt"
        ) from None
    return _pretty_json(value)


def _read_jsonl(data: bytes, filename: str) -> str:
    records = []
    for number, line in enumerate(_decode(data, filename).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(_pretty_json(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidFile(
                f"{filename}: line {number} is not valid JSON ({exc}); fix it, or upload it as .txt"
            ) from None
    return "\n\n".join(records)


def _read_csv(data: bytes, filename: str) -> str:
    text = _decode(data, filename)
    dialect: type[csv.Dialect] | csv.Dialect
    if filename.lower().endswith(".tsv"):
        dialect = csv.excel_tab
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
        except csv.Error:  # one column, or too little to tell: commas
            dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(row)]
    except csv.Error as exc:
        raise InvalidFile(f"{filename}: not a readable CSV file ({exc})") from None
    return _table_text(rows)


def _read_pdf(data: bytes, filename: str) -> str:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError

    if b"%PDF-" not in data[:1024]:  # where the PDF standard allows the header to be
        raise InvalidFile(f"{filename}: not a PDF file (no %PDF- header); upload the PDF itself")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")  # many PDFs are "encrypted" with an empty user password
        pages = [page.extract_text() or "" for page in reader.pages]
    except (FileNotDecryptedError, DependencyError):
        raise InvalidFile(
            f"{filename}: the PDF is encrypted; upload a copy without a password"
        ) from None
    except Exception as exc:  # pypdf raises many kinds (PdfReadError, KeyError, ...) on damage
        raise InvalidFile(
            f"{filename}: the PDF cannot be read ({exc or type(exc).__name__})"
        ) from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise InvalidFile(
            f"{filename}: the PDF has no text layer (a scanned document?); run OCR on it first"
        )
    return text


def _read_docx(data: bytes, filename: str) -> str:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # not a zip, not a Word package, damaged XML, ...
        raise InvalidFile(
            f"{filename}: not a readable DOCX file ({exc or type(exc).__name__}); "
            "save it from Word as .docx (not .doc) and upload it again"
        ) from None
    blocks = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = [_unique_cells(row.cells) for row in item.rows]
            blocks.append("\n".join(" | ".join(cells) for cells in rows if any(cells)))
        else:
            blocks.append(item.text.strip())
    return "\n\n".join(block for block in blocks if block)


def _read_notebook(data: bytes, filename: str) -> str:
    try:
        notebook = json.loads(_decode(data, filename))
        cells = notebook["cells"]
        sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] != "raw"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidFile(f"{filename}: not a readable Jupyter notebook ({exc!r})") from None
    return "\n\n".join(source.strip() for source in sources if source.strip())


_READERS: dict[str, Callable[[bytes, str], str]] = {
    **dict.fromkeys(_TEXT_EXTENSIONS, _read_text),
    **dict.fromkeys((".html", ".htm", ".xhtml"), _read_html),
    ".json": _read_json,
    **dict.fromkeys((".jsonl", ".ndjson"), _read_jsonl),
    **dict.fromkeys((".csv", ".tsv"), _read_csv),
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".ipynb": _read_notebook,
}

#: The file name extensions (lower case, with the dot) that :func:`extract_text` reads. A name
#: without an extension (``README``, ``Makefile``) is read by sniffing its content.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_READERS)


def extract_text(data: bytes, filename: str) -> str:
    """The searchable text of a file, read according to its name's extension.

    Raises :class:`UnsupportedFile` for an extension not in :data:`SUPPORTED_EXTENSIONS`, and
    :class:`InvalidFile` when the content cannot be read as its type or has no text.
    """
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix:
        reader = _READERS.get(suffix)
        if reader is None:
            raise UnsupportedFile(
                f"{filename}: files of type {suffix} cannot be searched; supported: "
                f"{_summary(SUPPORTED_EXTENSIONS)}; convert it to one of these (e.g. PDF or "
                "plain text) and upload it again"
            )
    else:
        reader = _sniff(data)
    text = _tidy(reader(data, filename))
    if not text:
        raise InvalidFile(f"{filename}: the file has no text to search; upload one that has")
    return text


def _sniff(data: bytes) -> Callable[[bytes, str], str]:
    """The reader for a file without an extension, from its first bytes (text by default)."""
    head = data[:512].lstrip()
    if head.startswith(b"%PDF-"):
        return _read_pdf
    if head.startswith(b"PK\x03\x04") and b"word/" in data[:65536]:
        return _read_docx
    if re.match(rb"(?i)<(!doctype html|html)[\s>]", head):
        return _read_html
    return _read_text


def _summary(extensions: Iterable[str]) -> str:
    names = sorted(extensions)
    shown = ", ".join(names[:_SUMMARY_LIMIT])
    return shown + (
        f" and {len(names) - _SUMMARY_LIMIT} more" if len(names) > _SUMMARY_LIMIT else ""
    )


# Control characters that text files do hold (tab, newlines, form feed, escape); any other
# below 0x20 is a sign of binary data.
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _decode(data: bytes, filename: str) -> str:
    """Text from bytes: by BOM, else UTF-8, else Windows-1252 (then Latin-1, which never fails).

    Binary data (control characters in more than 1% of the first 64k characters, or NULs) is
    refused: decoding it would index noise.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                break
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    sample = text[:65536]
    if "\x00" in sample or len(_BINARY_CONTROL.findall(sample)) > len(sample) // 100:
        raise InvalidFile(
            f"{filename}: the content is binary data, not text; upload the document itself "
            "(text, PDF, DOCX, ...) saved as UTF-8 if it is text"
        )
    return text


def _tidy(text: str) -> str:
    """One newline convention, no trailing blanks, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _table_text(rows: list[list[str]]) -> str:
    """Rows under a header line as ``column: value`` lines, one block per row."""
    if not rows:
        return ""
    header = [name.strip() for name in rows[0]]
    if len(rows) == 1:
        return " | ".join(header)
    blocks = []
    for row in rows[1:]:
        names = header + [f"column {i + 1}" for i in range(len(header), len(row))]
        lines = [
            f"{name or f'column {i + 1}'}: {value.strip()}"
            for i, (name, value) in enumerate(zip(names, row, strict=False))  # names cover the row
            if value.strip()
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(block for block in blocks if block)


def _unique_cells(cells: Iterable[Any]) -> list[str]:
    """A table row's cell texts, once per cell: merged cells repeat the same cell object."""
    seen: set[int] = set()
    texts = []
    for cell in cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            texts.append(cell.text.strip())
    return texts


_BLOCK_TAGS = (
    "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
    "ul", "caption",
)  # fmt: skip
_HIDDEN_TAGS = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object")


def _html_text(data: bytes) -> str:
    """The visible text of an HTML page: its title, then the body's blocks as paragraphs."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "lxml")
    for hidden in soup.find_all(_HIDDEN_TAGS):
        hidden.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head is not None:
        soup.head.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for cell in soup.find_all(("td", "th")):
        cell.insert_after(" | ")
    for row in soup.find_all("tr"):  # a table's rows stay together, one per line
        row.insert_after("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    lines = (re.sub(r"\s+", " ", line).strip(" |") for line in soup.get_text().split("\n"))
    body = "\n".join(lines)
    return f"{title}\n\n{body}" if title else body
