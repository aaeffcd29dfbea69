"""List semantics shared by every collection: ``property`` filters, ``orderby``, ``limit``, ``count`` and
continuation tokens (flow-service.md Part 2 §2.3).

* ``property=<path><op><value>``; ops ``==``, ``!=``, ``>=``, ``<=``, ``>``, ``<``; for ``==``/``!=`` a
  comma-separated value list means OR; repeated ``property`` parameters are ANDed. Path segments are dotted;
  ``[]`` marks an array (``sourceConnectionIds[]==a,b``). Arrays are also traversed without ``[]``.
* Paging is keyset-based: the token encodes the query (filters, order, limit) and the sort key of the last
  item returned, so following ``_links.next.href`` alone continues the same listing, and concurrent
  creates or deletes never make a page skip or repeat an item that existed throughout.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from .errors import FlowCode, flow_error

JsonObject = dict[str, Any]

MAX_LIMIT: Final = 100  # "retrieve a maximum of 100 entities" (Dest spec)
_OPERATOR = re.compile(r"^(?P<path>[A-Za-z0-9_.\[\]]+?)(?P<op>==|!=|>=|<=|>|<)(?P<value>.*)$")


@dataclass(frozen=True)
class Filter:
    path: tuple[str, ...]
    op: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, expression: str) -> Filter:
        match = _OPERATOR.match(expression.strip())
        if match is None:
            raise flow_error(
                FlowCode.BAD_FILTER_OPERATOR,
                f"Invalid property filter '{expression}': expected <field><operator><value> with an "
                "operator among ==, !=, >=, <=, >, <.",
            )
        path = tuple(segment.removesuffix("[]") for segment in match["path"].split("."))
        if any(not segment for segment in path):
            raise flow_error(FlowCode.BAD_FILTER_OPERATOR, f"Invalid property path in filter '{expression}'.")
        values = tuple(match["value"].split(",")) if match["op"] in ("==", "!=") else (match["value"],)
        return cls(path, match["op"], values)

    def matches(self, doc: JsonObject) -> bool:
        found = [_as_text(value) for value in _resolve(doc, self.path)]
        if self.op == "==":
            return any(value in self.values for value in found)
        if self.op == "!=":
            return not any(value in self.values for value in found)
        return any(_compare(value, self.op, self.values[0]) for value in found)


@dataclass(frozen=True)
class Ordering:
    field: str
    descending: bool

    def key(self, doc: JsonObject, seq: int) -> list[Any]:
        value = doc.get(self.field)
        # Missing values sort last; seq breaks ties so that the order is total and paging is stable.
        return [1, "", seq] if value is None else [0, value, seq]


@dataclass(frozen=True)
class ListQuery:
    filters: list[str] = field(default_factory=list)
    orderby: str | None = None
    limit: int = MAX_LIMIT
    count: bool = False
    after: list[Any] | None = None  # sort key of the last item of the previous page


@dataclass(frozen=True)
class Page:
    items: list[JsonObject]
    next_token: str | None
    count: int | None = None


def parse_query(params: Sequence[tuple[str, str]], *, sortable: frozenset[str], default_order: str | None) -> ListQuery:
    """Build the query from the raw parameters, resuming a continuation token when one is given."""
    filters = [value for name, value in params if name == "property"]
    raw = dict(params)
    orderby = raw.get("orderby", default_order)
    count = raw.get("count", "false").lower() == "true"
    limit: int | None = None
    if "limit" in raw:
        if count:
            raise flow_error(
                FlowCode.LIMIT_WITH_COUNT, "The query parameters 'limit' and 'count' cannot be used together."
            )
        limit = _parse_limit(raw["limit"])
    after = None
    if "continuationToken" in raw:
        state = _decode_token(raw["continuationToken"])
        filters, orderby, after = state["p"], state["o"], state["a"]
        limit = limit if limit is not None else state["l"]
    if orderby is not None:
        _ordering(orderby, sortable)  # validate early
    return ListQuery(filters, orderby, limit if limit is not None else MAX_LIMIT, count, after)


def paginate(
    entries: Sequence[tuple[int, JsonObject]],
    query: ListQuery,
    *,
    sortable: frozenset[str],
    project: Callable[[JsonObject], JsonObject] = lambda doc: doc,
) -> Page:
    filters = [Filter.parse(expression) for expression in query.filters]
    selected = [(seq, doc) for seq, doc in entries if all(f.matches(doc) for f in filters)]
    if query.count:
        return Page([], None, count=len(selected))
    ordering = _ordering(query.orderby, sortable) if query.orderby else None
    keyed = [((ordering.key(doc, seq) if ordering else [0, 0, seq]), doc) for seq, doc in selected]
    descending = ordering.descending if ordering else False
    keyed.sort(key=lambda item: item[0], reverse=descending)
    if query.after is not None:
        cursor = query.after
        keyed = [item for item in keyed if (item[0] < cursor if descending else item[0] > cursor)]
    page, rest = keyed[: query.limit], keyed[query.limit :]
    token = None
    if rest:
        token = _encode_token({"p": query.filters, "o": query.orderby, "l": query.limit, "a": page[-1][0]})
    return Page([project(doc) for _, doc in page], token)


def next_href(collection: str, token: str) -> str:
    """Relative to the Flow Service base path, as in Adobe's examples (``/connections?continuationToken=…``)."""
    return f"/{collection}?continuationToken={quote(token, safe='')}"


def _ordering(expression: str, sortable: frozenset[str]) -> Ordering:
    # A literal "+" in a query string decodes to a space, so " createdAt" means ascending too.
    text = expression.strip()
    descending = text.startswith("-")
    name = text.lstrip("+-").strip()
    if name not in sortable:
        raise flow_error(
            FlowCode.BAD_ORDERBY, f"Invalid orderby field '{name}'. Sortable fields: {', '.join(sorted(sortable))}."
        )
    return Ordering(name, descending)


def _parse_limit(raw: str) -> int:
    try:
        limit = int(raw)
    except ValueError:
        raise flow_error(FlowCode.BAD_QUERY_PARAM, f"Invalid value '{raw}' for query parameter 'limit'.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise flow_error(
            FlowCode.BAD_QUERY_PARAM,
            f"Invalid value '{raw}' for query parameter 'limit': it must be between 1 and {MAX_LIMIT}.",
        )
    return limit


def _encode_token(state: JsonObject) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> JsonObject:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(state, dict) and {"p", "o", "l", "a"} <= state.keys():
            return state
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    raise flow_error(FlowCode.BAD_QUERY_PARAM, "Invalid value for query parameter 'continuationToken'.")


def _resolve(node: Any, path: tuple[str, ...]) -> list[Any]:
    current = [node]
    for segment in path:
        following: list[Any] = []
        for value in current:
            if isinstance(value, dict) and segment in value:
                child = value[segment]
                following.extend(child if isinstance(child, list) else [child])
        current = following
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _compare(left: str, op: str, right: str) -> bool:
    try:
        a: Any = float(left)
        b: Any = float(right)
    except ValueError:
        a, b = left, right
    return bool({">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op])
