"""Validation errors a user can act on: pydantic's error list for a model → one ``Problem`` per error,
naming the field as the user wrote it, what is accepted and the fix. Shared by the CLI, the API and
the launch form (which shows the API's messages).

What pydantic says and what this module says instead:

- a tagged union's path holds the tag (``loss.dpo.beta``); the user wrote ``loss.beta`` — the tag is
  dropped from every path;
- a missing tag is "Unable to extract tag using discriminator 'kind'" → ``loss.kind: missing — say
  which loss with "kind", one of 'dpo', …; e.g. loss: {kind: dpo, beta: 0.1}``;
- an unknown field is "Extra inputs are not permitted" → ``optim.lrr: unknown field; did you mean
  'lr'?`` plus the section's fields;
- NaN/inf and out-of-range numbers name the accepted range (``0 < beta ≤ 100``).

Submitted values are never echoed back (a message may reach a page or a log); only our own names are.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

Loc = tuple[str | int, ...]
_DOTTED = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+$")
_BOUND_TYPES = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number")


@dataclass(frozen=True)
class Problem:
    """One error: ``loc`` is the path as the user wrote it, ``field`` its dotted form."""

    loc: Loc
    message: str
    kind: str

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.loc) or "config"

    def line(self) -> str:
        """``field: message``, the form the CLI prints."""
        return f"{self.field}: {self.message}"


@dataclass
class _Place:
    """Where a pydantic ``loc`` points: the user's path, the model holding the last part, its field."""

    loc: list[str | int]
    owner: type[BaseModel] | None = None
    field: FieldInfo | None = None
    union: dict[str, type[BaseModel]] | None = None  # the tag → model map of the last discriminated union


def explain(model: type[BaseModel] | None, errors: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Each pydantic error of validating ``model`` as a Problem (``model`` None: paths kept as given)."""
    return [_explain_one(model, error) for error in errors]


def _explain_one(model: type[BaseModel] | None, error: Mapping[str, Any]) -> Problem:
    kind = str(error.get("type", "value_error"))
    place = _walk(model, tuple(error.get("loc", ())))
    ctx = error.get("ctx") or {}
    message = str(error.get("msg", "invalid"))
    if kind == "union_tag_not_found":
        return _missing_tag(place, str(ctx.get("discriminator", "kind")).strip("'"))
    if kind == "union_tag_invalid":
        return _unknown_tag(place, str(ctx.get("discriminator", "kind")).strip("'"), str(ctx.get("tag", "")))
    if kind == "extra_forbidden":
        return Problem(tuple(place.loc), _unknown_field(place), kind)
    if kind == "missing":
        message = "required, and missing: add it"
    elif kind.startswith("model_") and kind.endswith("_type"):
        message = "expected a section of fields (a mapping like {name: value}), not a single value"
        if place.union:
            tags = list(place.union)
            message += f"; e.g. {place.loc[-1]}: {{kind: {tags[0]}}} with kind one of {_quoted(tags)}"
    elif kind == "literal_error":
        message = _with_guess(message, error.get("input"), _literal_values(place.field))
    elif kind in _BOUND_TYPES or kind.endswith("_parsing") or kind.endswith("_type"):
        message = _with_range(message, kind, place)
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
        return Problem(_named_in(message, tuple(place.loc)), message, kind)
    return Problem(tuple(place.loc), message, kind)


def _named_in(message: str, loc: Loc) -> Loc:
    """A model-level check's message starts with the dotted field it is about (``model.path is
    required …``): that field, when it lies under ``loc``; else ``loc``."""
    head = message.split(" ", 1)[0].rstrip(":,")
    parts = tuple(head.split("."))
    if _DOTTED.match(head) and parts[: len(loc)] == tuple(str(part) for part in loc) and len(parts) > 1:
        return parts
    return loc


# ---------------------------------------------------------------------------------------- the walk


def _walk(model: type[BaseModel] | None, loc: Loc) -> _Place:
    """Follow ``loc`` through ``model``'s fields, dropping discriminated-union tags from the path."""
    place = _Place([])
    current: Any = model
    for part in loc:
        if place.union is not None and isinstance(part, str) and part in place.union:
            current, place.union = place.union[part], None  # the tag: not part of what the user wrote
            continue
        place.loc.append(part)
        place.union = None
        if _is_model(current) and isinstance(part, str) and part in current.model_fields:
            place.owner, place.field = current, current.model_fields[part]
            current = _unwrap(place.field.annotation)
            place.union = _tagged_union(place.field, current)
        elif isinstance(part, int) and typing.get_origin(current) in (tuple, list):
            args = [arg for arg in typing.get_args(current) if arg is not Ellipsis]
            current = _unwrap(args[0]) if args else None
        else:
            place.owner = current if _is_model(current) else None
            place.field, current = None, None
    return place


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``; ``Annotated[X, ...]`` → ``X``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_union(annotation):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _tagged_union(field: FieldInfo, annotation: Any) -> dict[str, type[BaseModel]] | None:
    """tag → model for a field holding a discriminated union, else None."""
    if not isinstance(field.discriminator, str) or not _is_union(annotation):
        return None
    tags: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(annotation):
        if _is_model(member) and field.discriminator in member.model_fields:
            for tag in _literal_values(member.model_fields[field.discriminator]):
                tags[str(tag)] = member
    return tags


# ------------------------------------------------------------------------------------- the messages


def _missing_tag(place: _Place, tag_field: str) -> Problem:
    tags = list(place.union or {})
    section = place.loc[-1] if place.loc else "section"
    example = tags[0] if tags else "…"
    message = (
        f'missing — say which {section} with "{tag_field}", one of {_quoted(tags)}; '
        f'e.g. {section}: {{{tag_field}: {example}, …}} (JSON: {{"{tag_field}": "{example}", …}})'
    )
    return Problem((*place.loc, tag_field), message, "union_tag_not_found")


def _unknown_tag(place: _Place, tag_field: str, tag: str) -> Problem:
    tags = list(place.union or {})
    message = _with_guess(f"not a known {tag_field}; accepted: {_quoted(tags)}", tag, tags)
    return Problem((*place.loc, tag_field), message, "union_tag_invalid")


def _unknown_field(place: _Place) -> str:
    name = str(place.loc[-1]) if place.loc else ""
    owner = place.owner
    if not _is_model(owner):
        return "unknown field: remove it"
    known = [key for key in owner.model_fields]
    where = ".".join(str(part) for part in place.loc[:-1]) or "the top level"
    guess = _guess(name, known)
    hint = f" — did you mean '{guess}'?" if guess else ": remove it or fix its name."
    return f"unknown field{hint} {where} accepts: {', '.join(known)}"


def _with_guess(message: str, written: Any, accepted: Sequence[Any]) -> str:
    """``message`` with "did you mean 'x'?" when ``written`` is close to one accepted value."""
    guess = _guess(written, accepted)
    return f"{message}; did you mean '{guess}'?" if guess else message


def _guess(written: Any, accepted: Sequence[Any]) -> str | None:
    """The accepted name closest to ``written`` (difflib ratio ≥ 0.6, or equal ignoring case)."""
    if not isinstance(written, str) or not accepted:
        return None
    names = [str(value) for value in accepted]
    close = difflib.get_close_matches(written, names, n=1, cutoff=0.6)
    if not close:
        close = [name for name in names if name.lower() == written.lower()]
    return close[0] if close else None


def _with_range(message: str, kind: str, place: _Place) -> str:
    accepted = _accepted_range(place)
    if kind == "finite_number":
        message = "must be a finite number (NaN and infinity are not accepted)"
    return f"{message} (accepted: {accepted})" if accepted else message


def _accepted_range(place: _Place) -> str:
    """``0 < beta ≤ 100`` from a numeric field's bounds; '' when it has none."""
    field = place.field
    if field is None:
        return ""
    low = high = ""
    for item in _constraints(field):
        if isinstance(item, annotated_types.Gt):
            low = f"{_num(item.gt)} < "
        elif isinstance(item, annotated_types.Ge):
            low = f"{_num(item.ge)} ≤ "
        elif isinstance(item, annotated_types.Lt):
            high = f" < {_num(item.lt)}"
        elif isinstance(item, annotated_types.Le):
            high = f" ≤ {_num(item.le)}"
    name = str(place.loc[-1]) if place.loc else "value"
    kind = _number_kind(field.annotation)
    if not (low or high):
        return f"a {kind}" if kind else ""
    return f"a {kind}, {low}{name}{high}" if kind else f"{low}{name}{high}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _constraints(field: FieldInfo) -> list[Any]:
    items = list(field.metadata)
    annotation = field.annotation
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        annotation = args[0]
        for extra in args[1:]:
            items.extend(getattr(extra, "metadata", [extra]))
    return items


def _number_kind(annotation: Any) -> str:
    base = _unwrap(annotation)
    return {int: "whole number", float: "number"}.get(base, "")


def _literal_values(field: FieldInfo | None) -> list[Any]:
    if field is None:
        return []
    annotation = _unwrap(field.annotation)
    if typing.get_origin(annotation) in (tuple, list):
        annotation = _unwrap(typing.get_args(annotation)[0])
    return list(typing.get_args(annotation)) if typing.get_origin(annotation) is typing.Literal else []


def _quoted(values: Sequence[Any]) -> str:
    return ", ".join(f"'{value}'" for value in values)
