"""Each file type file search reads, on a small file the test builds, and the files it refuses."""

from __future__ import annotations

import io
import json
import random

import docx
import pypdf
import pytest

from ipyassistant.server.retrieval.parsing import (
    SUPPORTED_EXTENSIONS,
    InvalidFile,
    UnsupportedFile,
    extract_text,
)


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one page per item, its lines in Helvetica (ASCII text only)."""
    count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, lines in enumerate(pages):
        shown = " T* ".join(f"({line})Tj" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET".encode("ascii")
        objects[4 + 2 * i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number in sorted(objects):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew by 12 percent.")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {
        (0, 0): "Region",
        (0, 1): "Sales",
        (1, 0): "North",
        (1, 1): "42",
    }.items():
        table.cell(row, col).text = text
    document.add_paragraph("Costs were flat.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def encrypt(pdf: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_plain_text_is_decoded_with_one_newline_convention():
    data = "Première ligne\r\nSecond line  \r\n\r\n\r\n\r\nThird\n".encode()
    assert extract_text(data, "notes.txt") == "Première ligne\nSecond line\n\nThird"


def test_text_that_is_not_utf8_falls_back_to_windows_1252():
    assert extract_text("Café “quoted”".encode("cp1252"), "old.txt") == "Café “quoted”"


def test_byte_order_marks_choose_the_encoding():
    assert extract_text("\ufeffwith a BOM".encode(), "a.txt") == "with a BOM"
    assert extract_text("UTF-16 text".encode("utf-16"), "b.txt") == "UTF-16 text"


def test_markdown_is_kept_as_written():
    source = "# Title\n\nSome *emphasis* and a [link](https://example.org).\n\n- item"
    assert extract_text(source.encode(), "README.md") == source


def test_code_keeps_its_indentation():
    source = 'def area(r: float) -> float:\n    """Circle."""\n    return 3.14159 * r * r\n'
    assert extract_text(source.encode(), "geometry.py") == source.strip()


def test_html_keeps_the_visible_text_only():
    page = b"""<!doctype html><html><head><title>The Title</title>
    <style>p { color: red }</style><script>var secret = 'from script';</script></head>
    <body><!-- a comment --><p>Hello <b>world</b>, again.</p><div>Second<br>line</div>
    <table><tr><th>Name</th><th>Age</th></tr><tr><td>Ada</td><td>36</td></tr></table>
    <script>alert("also hidden")</script><noscript>Enable JavaScript</noscript></body></html>"""
    text = extract_text(page, "page.html")
    assert text == "The Title\n\nHello world, again.\n\nSecond\nline\n\nName | Age\nAda | 36"
    for hidden in ("secret", "color", "comment", "hidden", "JavaScript"):
        assert hidden not in text


def test_json_is_pretty_printed_with_its_keys_in_order():
    data = json.dumps({"zeta": 1, "alpha": {"name": "café", "tags": ["a", "b"]}}).encode()
    text = extract_text(data, "data.json")
    assert json.loads(text) == json.loads(data)
    assert text.index('"zeta"') < text.index('"alpha"')
    assert '"name": "café"' in text and "\n  " in text


def test_json_lines_are_records_separated_by_blank_lines():
    text = extract_text(b'{"id": 1}\n\n{"id": 2}\n', "rows.jsonl")
    assert [json.loads(block) for block in text.split("\n\n")] == [{"id": 1}, {"id": 2}]


def test_invalid_json_says_where():
    with pytest.raises(InvalidFile, match=r"data\.json: not valid JSON .*line 2"):
        extract_text(b'{"a": 1,\n oops}', "data.json")


def test_csv_rows_become_column_value_lines():
    data = b"name,age,city\nAda,36,London\nAlan,41,\n"
    assert extract_text(data, "people.csv") == (
        "name: Ada\nage: 36\ncity: London\n\nname: Alan\nage: 41"
    )


def test_csv_delimiters_are_sniffed_and_tsv_uses_tabs():
    assert extract_text(b"name;age\nAda;36\n", "p.csv") == "name: Ada\nage: 36"
    assert extract_text(b"name\tage\nAda\t36\n", "p.tsv") == "name: Ada\nage: 36"


def test_pdf_pages_are_extracted():
    pdf = make_pdf([["Annual report", "Revenue rose sharply."], ["Page two holds the outlook."]])
    text = extract_text(pdf, "report.pdf")
    assert "Annual report" in text and "Revenue rose sharply." in text
    assert text.endswith("Page two holds the outlook.")
    assert "\n\n" in text  # pages are paragraphs


def test_pdf_with_an_empty_user_password_is_read():
    pdf = encrypt(make_pdf([["Readable by anyone."]]), user_password="")
    assert extract_text(pdf, "open.pdf") == "Readable by anyone."


def test_pdf_locked_with_a_password_is_invalid():
    pdf = encrypt(make_pdf([["Secret plans."]]), user_password="s3cret")
    with pytest.raises(InvalidFile, match=r"locked\.pdf: the PDF is encrypted"):
        extract_text(pdf, "locked.pdf")


def test_pdf_without_text_asks_for_ocr():
    with pytest.raises(InvalidFile, match=r"no text layer.*OCR"):
        extract_text(make_pdf([[]]), "scan.pdf")


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4\nthis is not a PDF body at all", b"plain text named .pdf", b""],
    ids=["corrupt", "not-a-pdf", "empty"],
)
def test_unreadable_pdf_is_invalid(data: bytes):
    with pytest.raises(InvalidFile, match=r"^broken\.pdf: "):
        extract_text(data, "broken.pdf")


def test_docx_paragraphs_and_tables_are_extracted_in_order():
    assert extract_text(make_docx(), "report.docx") == (
        "Quarterly report\n\nRevenue grew by 12 percent.\n\n"
        "Region | Sales\nNorth | 42\n\nCosts were flat."
    )


@pytest.mark.parametrize("data", [b"PK\x03\x04 truncated zip", b"not a zip"], ids=["zip", "text"])
def test_unreadable_docx_is_invalid(data: bytes):
    with pytest.raises(InvalidFile, match=r"memo\.docx: not a readable DOCX file.*\.docx"):
        extract_text(data, "memo.docx")


def test_notebook_cells_are_extracted():
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["# Analysis\n", "Load the data."]},
            {"cell_type": "code", "source": "df = load()", "outputs": []},
            {"cell_type": "raw", "source": "ignored"},
        ]
    }
    text = extract_text(json.dumps(notebook).encode(), "analysis.ipynb")
    assert text == "# Analysis\nLoad the data.\n\ndf = load()"


def test_extensions_are_case_insensitive():
    assert extract_text(make_pdf([["Shouting name."]]), "REPORT.PDF") == "Shouting name."


def test_files_without_extension_are_sniffed():
    assert extract_text(b"Just text.\n", "README") == "Just text."
    assert extract_text(make_pdf([["A PDF without its name."]]), "download") == (
        "A PDF without its name."
    )
    assert extract_text(b"<!DOCTYPE html><p>Hi <i>there</i></p>", "index") == "Hi there"


@pytest.mark.parametrize("name", ["report.xyz", "slides.pptx", "old.doc", "photo.PNG"])
def test_unsupported_types_say_what_is_supported(name: str):
    suffix = name[name.rindex(".") :].lower()
    with pytest.raises(UnsupportedFile) as caught:
        extract_text(b"whatever", name)
    message = str(caught.value)
    assert message.startswith(f"{name}: files of type {suffix} cannot be searched; supported: ")
    assert ".csv" in message and "convert it" in message


def test_supported_extensions_cover_the_issue_s_formats():
    required = {".txt", ".md", ".html", ".py", ".json", ".csv", ".pdf", ".docx"}
    assert required <= SUPPORTED_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_EXTENSIONS)


@pytest.mark.parametrize(
    "data",
    [random.Random(0).randbytes(4096), bytes(range(32)) * 50, b"text\x00with\x00nuls"],
    ids=["random", "controls", "nuls"],
)
def test_binary_junk_is_invalid(data: bytes):
    with pytest.raises(InvalidFile, match=r"blob\.txt: the content is binary data"):
        extract_text(data, "blob.txt")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"", "empty.txt"),
        (b" \n\t\n", "blank.md"),
        (b"<html><script>x()</script></html>", "e.html"),
    ],
)
def test_files_without_text_are_invalid(data: bytes, name: str):
    with pytest.raises(InvalidFile, match=rf"{name}: the file has no text to search"):
        extract_text(data, name)
