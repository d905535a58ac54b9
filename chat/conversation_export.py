"""A conversation as a file: Markdown to read (the branch its owner sees), JSON to keep or move
(every message of every branch, with its place in the tree, metadata, usage and attachments),
and the JSON imported back as a new conversation.

The JSON is self-contained (attachments as base64) and versioned (`format`, `version`). Import
trusts nothing in it: every field is checked as a `send` would be, files are recognised from
their bytes again, and ids, owners and timestamps of the server's own making are never taken
from the file.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from chat import attachments, branches
from chat.models import Attachment, Conversation, Message, User

FORMAT = "noboxweb.conversation"
# 2: messages carry `seq` and `parent` (the seq they follow) and the file the `leaf` shown;
# 1 (still imported): one branch, in order.
VERSION = 2
READABLE_VERSIONS = (1, 2)
STATUSES = {choice.value for choice in Message.Status} - {Message.Status.STREAMING.value}


# --- export --------------------------------------------------------------------------------------


def as_json(conversation: Conversation) -> dict[str, Any]:
    messages = conversation.messages.exclude(status=Message.Status.STREAMING)
    messages = messages.prefetch_related("files")
    tree = branches.tree_of(conversation)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "max_tokens": conversation.max_tokens,
        "created_at": conversation.created_at.isoformat(),
        "leaf": tree.leaf,
        "messages": [
            _message_json(m, tree.parent)
            for m in messages.prefetch_related("files").order_by("seq")
        ],
    }


def _message_json(message: Message, parents: dict[int, int | None]) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "parent": parents[message.seq],
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "status": message.status,
        "finish_reason": message.finish_reason,
        "error": {"code": message.error_code, "message": message.error_message}
        if message.error_code
        else None,
        "usage": {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "total_tokens": message.total_tokens,
        }
        if message.total_tokens is not None
        else None,
        "cost": str(message.cost) if message.cost is not None else None,
        "created_at": message.created_at.isoformat(),
        "attachments": [_file_json(f) for f in message.files.all()],
    }


def _file_json(file: Attachment) -> dict[str, Any]:
    return {
        "name": file.name,
        "type": file.kind,
        "content_type": file.content_type,
        "data": base64.b64encode(attachments.read(file.stored_name)).decode("ascii"),
    }


def as_markdown(conversation: Conversation) -> str:
    """The conversation to read: each message under a heading saying who wrote it and when."""
    lines = [f"# {conversation.display_title}", ""]
    if conversation.system_prompt:
        lines += ["> System prompt: " + conversation.system_prompt.replace("\n", "\n> "), ""]
    shown = branches.visible_messages(conversation, branches.load(conversation))
    for message in (m for m in shown if m.status != Message.Status.STREAMING):
        lines += [f"## {_author(message)} · {message.created_at:%Y-%m-%d %H:%M} UTC", ""]
        lines += [f"*Attached: {ref['name']} ({ref['type']})*" for ref in message.attachments]
        if message.attachments:
            lines.append("")
        lines += [message.content or "*(no text)*", ""]
        if message.status not in (Message.Status.COMPLETE, ""):
            lines += [f"*Reply {message.status}: {message.error_message or 'incomplete'}*", ""]
    return "\n".join(lines)


def _author(message: Message) -> str:
    if message.role == Message.Role.USER:
        return "You"
    return f"Assistant ({message.model})" if message.model else "Assistant"


# --- import --------------------------------------------------------------------------------------


class ImportRefused(ValueError):
    """The file is not a conversation this server can take; the message says why."""


def import_json(owner: User, raw: bytes) -> Conversation:
    """A new conversation of `owner` from an exported file; raises ImportRefused."""
    data = _parsed(raw)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ImportRefused(_("The file holds no messages."))
    if len(messages) > settings.MAX_IMPORT_MESSAGES:
        raise ImportRefused(
            _("At most %(count)d messages can be imported.")
            % {"count": settings.MAX_IMPORT_MESSAGES}
        )
    checked = [_checked_message(m, i) for i, m in enumerate(messages)]
    _place_in_tree(messages, checked, data.get("version"))
    stored = [attachments.save_files(uploads) for _fields, uploads in checked]
    try:
        with transaction.atomic():
            return _create(owner, data, checked, stored)
    except BaseException:
        attachments.discard(name for names in stored for name in names)
        raise


def _parsed(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ImportRefused(_("The file is not JSON.")) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportRefused(_("The file is not a noboxweb conversation export."))
    if data.get("version") not in READABLE_VERSIONS:
        raise ImportRefused(_("Only version 1 and 2 exports can be imported."))
    return data


def _place_in_tree(
    items: list[Any],
    checked: list[tuple[dict[str, Any], list[attachments.Upload]]],
    version: object,
) -> None:
    """Set each checked message's `parent_seq` (a position in the new conversation, counted
    from 1 in file order): from a version 2 file's `seq`/`parent`, which must name a message
    earlier in the file; a version 1 file is one branch."""
    position: dict[object, int] = {}
    for index, (item, (fields, _uploads)) in enumerate(zip(items, checked, strict=True)):
        if version == 1:
            fields["parent_seq"] = index  # 0: the first
            continue
        parent = item.get("parent")
        if parent is not None and (isinstance(parent, bool) or parent not in position):
            raise ImportRefused(f"Message {index + 1} follows no earlier message of the file.")
        fields["parent_seq"] = position[parent] if parent is not None else 0
        seq = item.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            position[seq] = index + 1


def _create(
    owner: User,
    data: dict[str, Any],
    checked: list[tuple[dict[str, Any], list[attachments.Upload]]],
    stored: list[list[str]],
) -> Conversation:
    conversation = Conversation.objects.create(
        owner=owner,
        title=_text(data, "title", 200),
        model=_text(data, "model", 200),
        system_prompt=_text(data, "system_prompt", settings.MAX_SYSTEM_PROMPT_CHARS),
        temperature=_number(data.get("temperature"), 0, 2),
        max_tokens=_whole(data.get("max_tokens"), 1, settings.MAX_OUTPUT_TOKENS),
        next_seq=len(checked) + 1,
        leaf_seq=_imported_leaf(data, checked),
        # One branch unless some message follows another than the one before it.
        branched=any(f["parent_seq"] != seq - 1 for seq, (f, _uploads) in enumerate(checked, 1)),
    )
    messages, files = [], []
    for seq, ((fields, uploads), names) in enumerate(zip(checked, stored, strict=True), 1):
        message = Message(conversation=conversation, seq=seq, **fields)
        files.extend(message.take_files(attachments.rows_for(uploads, names)))
        messages.append(message)
    Message.objects.bulk_create(messages)
    Attachment.objects.bulk_create(files)
    return conversation


def _imported_leaf(
    data: dict[str, Any], checked: list[tuple[dict[str, Any], list[attachments.Upload]]]
) -> int | None:
    """The new seq of the message the file says was shown last (None: the newest)."""
    leaf = data.get("leaf")
    seqs = [item.get("seq") for item in data["messages"]]
    if data.get("version") == 1 or isinstance(leaf, bool) or leaf not in seqs:
        return None
    return seqs.index(leaf) + 1


def _checked_message(item: object, index: int) -> tuple[dict[str, Any], list[attachments.Upload]]:
    if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
        raise ImportRefused(
            _("Message %(number)d is not a user or assistant message.") % {"number": index + 1}
        )
    status = item.get("status") or "complete"
    if status not in STATUSES:
        raise ImportRefused(_("Message %(number)d has an unknown status.") % {"number": index + 1})
    error, usage = _object(item.get("error")), _object(item.get("usage"))
    fields = {
        "role": item["role"],
        "content": _text(item, "content", settings.MAX_IMPORT_MESSAGE_CHARS),
        "model": _text(item, "model", 200),
        "status": status,
        "finish_reason": _text(item, "finish_reason", 32),
        "error_code": _text(error, "code", 64),
        "error_message": _text(error, "message", 2000),
        "prompt_tokens": _whole(usage.get("prompt_tokens"), 0, 10**9),
        "completion_tokens": _whole(usage.get("completion_tokens"), 0, 10**9),
        "total_tokens": _whole(usage.get("total_tokens"), 0, 10**9),
        "cost": _cost(item.get("cost")),
        "created_at": _when(item.get("created_at")),
    }
    files = item.get("attachments") or []
    if item["role"] != "user" or not isinstance(files, list):
        files = []
    if len(files) > settings.MAX_ATTACHMENTS:
        raise ImportRefused(
            _("Message %(number)d has more than %(count)d files.")
            % {"number": index + 1, "count": settings.MAX_ATTACHMENTS}
        )
    return fields, [_checked_file(f, index) for f in files]


def _checked_file(item: object, index: int) -> attachments.Upload:
    not_accepted = _("A file of message %(number)d is not a file we accept.")
    data = item.get("data") if isinstance(item, dict) else None
    if not isinstance(data, str):
        raise ImportRefused(_("A file of message %(number)d has no data.") % {"number": index + 1})
    try:
        raw = attachments.decode(data, settings.MAX_ATTACHMENT_BYTES)
        kind = attachments.recognise(raw)
    except attachments.Undecodable as refused:
        if refused.reason == "too_large":
            too_large = _("A file of message %(number)d is too large.")
            raise ImportRefused(too_large % {"number": index + 1}) from None
        raise ImportRefused(not_accepted % {"number": index + 1}) from None
    except attachments.Unrecognised:
        raise ImportRefused(not_accepted % {"number": index + 1}) from None
    assert isinstance(item, dict)
    return attachments.Upload(attachments.clean_name(item.get("name"), kind), raw, kind)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImportRefused(_("%(field)s must be text.") % {"field": key})
    # NUL and lone surrogates: no database column holds them (see incoming_frames).
    return "".join(c for c in value[:limit] if c != "\x00" and not "\ud800" <= c <= "\udfff")


def _number(value: object, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if low <= value <= high else None


def _whole(value: object, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def _cost(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        cost = Decimal(value)
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and 0 <= cost < 10**6 else None


def _when(value: object) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or timezone.is_naive(parsed):
        return timezone.now()
    return parsed
