"""A receipt as people read it (#25): Markdown in the site's language, from the JSON receipt.

The JSON receipt is the record and stays language-neutral (English messages, stable reason
codes, the same keys for every site); this module renders it for a reader. What a site does
about each reason (``fix``) and the sentences of the validation templates (``message``) are
translated through the ``bonebase`` gettext domain: a message written from a template of
validation/messages.py is matched back against that template and written again from the
translated one, with the same values; a message of any other origin stays as it was written.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from functools import cache

from bonebase.i18n import _, current, translations


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue (``pybabel extract -k N_``); translated where shown."""
    return message


def fix_text(reason: str, lang: str | None = None) -> str:
    """What the site does about a quarantine reason (``unparseable_date:<Keyword>`` included),
    in ``lang``."""
    from bonebase.ingest.receipt import fix_for

    return _(fix_for(reason), lang)


def place_text(place: str, lang: str | None = None) -> str:
    """``row 17, case HX-0042, file x.dcm`` (validation.messages.where) in ``lang``."""
    m = re.fullmatch(r"(?:row (?P<row>\d+))?(?:, )?(?:case (?P<case>.+?))?(?:, )?"
                     r"(?:file (?P<file>.+))?", place)
    if place == "submission":
        return _("submission", lang)
    if not m or not any(m.groupdict().values()):
        return place
    parts = []
    if m["row"]:
        parts.append(_("row {row}", lang).format(row=m["row"]))
    if m["case"]:
        parts.append(_("case {case}", lang).format(case=m["case"]))
    if m["file"]:
        parts.append(_("file {file}", lang).format(file=m["file"]))
    return _(", ", lang).join(parts)


#: The sentences of the quarantine items that ingest writes itself (bonebase/ingest/accept.py,
#: bonebase/dicom/read.py and stream.py), by reason: read back and translated like the
#: validation templates. A sentence worded otherwise stays as written (English).
_UNLISTED = N_("{file}: a {kind} image that no manifest row names in an image_file column; to "
               "send it, name it in its case's row (docs/manifest.md, 'JPEG and PNG images'), "
               "else remove it from the submission")  # process_raster.py, either reason
OTHER_SENTENCES = {
    "case_rejected": (N_("{file}: its case (row {row}) was rejected ({why}); it is kept until the "
                         "row is fixed"),),
    "duplicate_file": (N_("{file}: identical to {first} in the same submission; the copy was not "
                          "stored"),),
    "non_dicom": (N_("{file}: not a DICOM file (no 'DICM' preamble and no DICOM data set inside); "
                     "remove files that are not DICOM images from the submission"), _UNLISTED),
    "unlisted_image": (_UNLISTED,),
    "corrupt_file": (
        N_("{file}: the DICOM file is truncated (it ends inside Pixel Data); the site should "
           "export the image again from its PACS as a DICOM Part 10 file"),
        N_("{file}: the DICOM file is truncated (it ends inside an element); the site should "
           "export the image again from its PACS as a DICOM Part 10 file"),
        N_("{file}: a DICOM file whose header is damaged (the 'DICM' marker and data set cannot "
           "be read); the site should export the image again from its PACS as a DICOM Part 10 "
           "file"),
    ),
    "images_without_row": (N_("{file}: matches no manifest row by {why}; add the case to the "
                              "manifest or correct the ids"),),
}


#: The stages a failed submission's receipt names (``failed_at``), as flows/ingest.py writes
#: them: shown translated (tests/unit/test_i18n_receipts.py keeps the two lists equal).
STAGES = (N_("reading the manifest"), N_("de-identifying the files"),
          N_("matching images to rows"), N_("validating"), N_("planning the cases"),
          N_("opening the object store"), N_("storing the cases"),
          N_("keeping the quarantined files"), N_("writing the receipt"),
          N_("recording the submission"))


#: bonebase.vocab.Behaviour's words, as a validation message names a diagnosis' behaviour.
BEHAVIOURS = (N_("benign"), N_("intermediate"), N_("malignant"), N_("normal"))


def message_text(reason: str, message: str, lang: str | None = None) -> str:
    """A quarantine message in ``lang``: rewritten from the translated sentence of ``reason``
    (a validation template, or a sentence of ingest's own) that the English message was written
    from, with the same values; else as it was written."""
    from validation.messages import _TEMPLATES

    code = reason.split(":", 1)[0]
    sentences = (*((_TEMPLATES[code],) if code in _TEMPLATES else ()),
                 *OTHER_SENTENCES.get(code, ()))
    found = _read_back(message, sentences, lang)
    if found is None:
        return message
    translated, values = found
    values["where"] = place_text(values.get("where") or "", lang)
    if values.get("diagnosis_behaviour") in BEHAVIOURS:  # the vocabulary's word
        values["diagnosis_behaviour"] = _(values["diagnosis_behaviour"], lang)
    return _fill(translated, values)


# Errors longer than this stay as written (a 16k-character line took 0.34 s to match).
_LONGEST_MATCHED = 2000


def error_text(error: str, lang: str | None = None) -> str:
    """A failed submission's ``error`` (English, as the JSON receipt keeps it) in ``lang``: a
    message of the ``bonebase`` catalogue (bonebase's own errors, raised with ``_``) is written
    again from its translation with the same values; any other (an unexpected error's type and
    place, a message written in English only) stays as it was written."""
    lang = lang or current()
    exact = translations(lang).gettext(error)
    if exact != error:
        return exact
    if len(error) > _LONGEST_MATCHED:  # the templates' lazy groups grow quadratically with it
        return error
    found = _read_back(error, _error_templates(lang), lang)
    return _fill(*found) if found is not None else error


def _read_back(text: str, templates: Iterable[str], lang: str | None) -> tuple[str, dict[str, str]] | None:
    """The translation into ``lang`` of the first English template that ``text`` was written
    from (one that has a translation), and the values read back out of ``text``; else None."""
    catalogue = translations(lang or current())
    for template in templates:
        translated = catalogue.gettext(template)
        if translated != template:
            m = _pattern(template).fullmatch(text)
            if m is not None:
                return translated, m.groupdict()
    return None


@cache
def _error_templates(lang: str) -> tuple[str, ...]:
    """The translated messages of ``lang``'s catalogue that hold named values, the most literal
    text first (a message made of little more than its values would match anything)."""
    catalogue = translations(lang)
    found = []
    for msgid in getattr(catalogue, "_catalog", {}):
        if not isinstance(msgid, str) or "{" not in msgid or catalogue.gettext(msgid) == msgid:
            continue
        try:
            fields = list(string.Formatter().parse(msgid))
        except ValueError:
            continue
        names = [name for _lit, name, _spec, _conv in fields if name is not None]
        literal = sum(len(lit) for lit, *_rest in fields)
        if names and all(n.isidentifier() for n in names) and literal >= 12:
            found.append((-literal, msgid))
    return tuple(msgid for _n, msgid in sorted(found))


@cache
def _pattern(template: str) -> re.Pattern:
    """A regular expression that reads a template's values back out of a message written from it
    (a placeholder's repeats must hold the same text)."""
    out, seen = [], set()
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name is None:
            continue
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
    return re.compile("".join(out), re.S)


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with the values as read (text already formatted: specs and !r are dropped)."""
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "?"))
    return "".join(out)


def to_markdown(receipt: dict, lang: str | None = None) -> str:
    """The receipt in Markdown, in ``lang`` (default: the current language); codes, numbers and
    file names as in the JSON."""
    lang = lang or current()

    if receipt.get("status") == "failed":
        return (_("# Receipt: submission {submission} from site {site}", lang).format(**receipt) + "\n\n"
                + _("- status: FAILED while {stage}", lang).format(
                    stage=_(receipt["failed_at"], lang)) + "\n"
                + _("- error: {error}", lang).format(error=error_text(receipt["error"], lang))
                + "\n"
                + _("- what to do: {what}", lang).format(what=_(receipt["what_to_do"], lang))
                + "\n")
    c = receipt["counts"]
    lines = [
        _("# Receipt: submission {submission} from site {site}", lang).format(**receipt),
        "",
        _("- manifest rows: {rows}, files: {files}", lang).format(**c),
        _("- cases accepted: {cases_accepted} (new {cases_new}, updated {cases_updated}, "
          "unchanged {cases_unchanged})", lang).format(**c),
        _("- files accepted: {files_accepted} (stored now {files_stored}, already stored "
          "{files_duplicate})", lang).format(**c),
        _("- quarantined: {quarantined}; warnings: {warnings}", lang).format(**c),
    ]
    if receipt.get("match_rule"):
        lines.append(_("- images matched to rows by rule {rule}", lang)
                     .format(rule=receipt["match_rule"]))
    if c.get("images_outlined"):
        lines.append(_("- lesion outlines: {outline_shapes} shapes on {images_outlined} images "
                       "(annotation_file)", lang).format(**c))
    done = receipt.get("deidentified") or {}
    for key, label in (("free_text", N_("free text in accepted files")),
                       ("burned_in_text", N_("burned-in text in accepted files")),
                       ("image_metadata", N_("JPEG metadata segments removed"))):
        if done.get(key):
            lines.append(_("- {label}: {counts}", lang).format(
                label=_(label, lang), counts=", ".join(f"{k} {n}" for k, n in done[key].items())))
    if receipt.get("data_docs"):
        lines.append(_("- validation report (Data Docs): {path}", lang)
                     .format(path=receipt["data_docs"]))
    if receipt.get("cases"):
        heads = (N_("row"), N_("case"), N_("matched by"), N_("files"))
        lines += ["", _("## Cases accepted", lang), "", _row(_(h, lang) for h in heads),
                  "| --- | --- | --- | --- |"]
        for case in receipt["cases"]:
            lines.append(f"| {case['row']} | {case.get('case') or ''} | "
                         f"{case.get('matched_by') or ''} | {len(case.get('files') or ())} |")
    if receipt["quarantine"]:
        heads = (N_("reason"), N_("row"), N_("file"), N_("what happened"), N_("what to do"))
        lines += ["", _("## Quarantined", lang), "", _row(_(h, lang) for h in heads),
                  "| --- | --- | --- | --- | --- |"]
        for q in receipt["quarantine"]:
            message = message_text(q["reason"], q["message"], lang).replace("|", "/")
            lines.append(f"| {q['reason']} | {q['row'] or ''} | {q['file'] or ''} | "
                         f"{message} | {fix_text(q['reason'], lang)} |")
    if receipt["warnings"]:
        lines += ["", _("## Warnings (accepted)", lang), ""]
        lines += [f"- {message_text(w.get('reason', ''), w['message'], lang)}"
                  for w in receipt["warnings"]]
    if receipt["notes"]:
        lines += ["", _("## Submission-level findings", lang), ""]
        lines += [f"- {n}" for n in receipt["notes"]]
    return "\n".join(lines) + "\n"


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"
