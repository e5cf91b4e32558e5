"""Harmless test attachments of the kinds mail filters single out, made in memory for ``mail.smtp_probe``.

The case this comes from: a firewall/UTM inspecting POP3/IMAP (and SMTP) dropped every message carrying a
macro-enabled Office file or a password-protected ZIP; the mail client showed an error and the message was
gone from every PC. Filters recognise those kinds by their container, not by running anything, so each
sample here has exactly the marks a filter looks at and nothing else:

- ``docm`` / ``xlsm``: an Office Open XML package (a ZIP, ECMA-376 Part 2) whose ``[Content_Types].xml``
  declares the macro-enabled main part and which holds an empty ``vbaProject.bin``; no macro code.
- ``zip_encrypted``: a ZIP whose entry has general-purpose bit 0 ("encrypted", PKWARE APPNOTE 4.4.4) set;
  the bytes are plain text, so nothing can be "decrypted" out of it.
- ``none``, ``pdf``, ``docx``, ``zip``: the controls, so a pattern can be told from "all mail is lost".
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Literal

AttachmentKind = Literal["none", "pdf", "docx", "zip", "docm", "xlsm", "zip_encrypted"]
KINDS: tuple[str, ...] = ("none", "pdf", "docx", "zip", "docm", "xlsm", "zip_encrypted")
# Kinds UTM mail inspection commonly drops: macro-enabled Office files and archives it cannot look into.
FILTERED = frozenset({"docm", "xlsm", "zip_encrypted"})

_NOTE = b"breakglass test attachment: harmless, contains no macro and no executable content.\n"
_OOXML = {
    # kind: (file name, MIME type, main part, main part content type)
    "docx": ("breakglass-test.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"),
    "docm": ("breakglass-test.docm", "application/vnd.ms-word.document.macroEnabled.12",
             "word/document.xml", "application/vnd.ms-word.document.macroEnabled.main+xml"),
    "xlsm": ("breakglass-test.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12",
             "xl/workbook.xml", "application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
}


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    data: bytes

    @property
    def maintype(self) -> str:
        return self.mime_type.split("/", 1)[0]

    @property
    def subtype(self) -> str:
        return self.mime_type.split("/", 1)[1]


def build(kind: str) -> Attachment | None:
    """The sample of ``kind``; None for ``none`` (a message without attachment)."""
    if kind == "none":
        return None
    if kind == "pdf":
        return Attachment("breakglass-test.pdf", "application/pdf", _pdf())
    if kind == "zip":
        return Attachment("breakglass-test.zip", "application/zip", _zip(encrypted=False))
    if kind == "zip_encrypted":
        return Attachment("breakglass-test-protected.zip", "application/zip", _zip(encrypted=True))
    if kind in _OOXML:
        name, mime, part, part_type = _OOXML[kind]
        return Attachment(name, mime, _ooxml(part, part_type, macros=kind != "docx"))
    raise ValueError(f"unknown attachment kind '{kind}'; kinds: {', '.join(KINDS)}")


def _pdf() -> bytes:
    body = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    return body + b"trailer << /Root 1 0 R >>\n%%EOF\n"


def _zip(encrypted: bool) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("readme.txt", date_time=(2024, 1, 1, 0, 0, 0)), _NOTE)
    data = bytearray(buffer.getvalue())
    if encrypted:
        # zipfile cannot write encrypted entries (and resets flag_bits), so the "encrypted" bit is set in
        # the local header (flags at offset 6) and the central directory header (offset 8) afterwards:
        # the mark a filter reads, over an entry that stays plain text.
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.index(signature) + offset
            data[at] |= 0x01
    return bytes(data)


def _ooxml(part: str, part_type: str, macros: bool) -> bytes:
    overrides = f'<Override PartName="/{part}" ContentType="{part_type}"/>'
    if macros:
        overrides += f'<Override PartName="/{part.split("/")[0]}/vbaProject.bin" ContentType="application/vnd.ms-office.vbaProject"/>'
    types = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             '<Default Extension="xml" ContentType="application/xml"/>' + overrides + "</Types>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr(part, '<?xml version="1.0" encoding="UTF-8"?><root/>')
        if macros:
            archive.writestr(f"{part.split('/')[0]}/vbaProject.bin", b"")  # present and empty: no macro code
    return buffer.getvalue()
