"""The analytics registry: which analytics agents offer, and their params validated at create.

Analytics exist only because agents registered them. The agents projection keeps the newest
offer of each analytic (``AgentsProjection.offers``, updated per agent event); the JSON-Schema
validator of each offer is compiled once and cached by the schema's content, so a stream create
costs one dictionary lookup and one validation, not a walk over every agent.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
import msgspec

from core.errors import Invalid
from events.model import AnalyticOffer
from ops.api.requests import AnalyticIn
from projections.agents import AgentsProjection

__all__ = ["AnalyticsRegistry", "check_schema"]


@lru_cache(maxsize=1024)
def _compiled(schema_json: bytes) -> Any:
    schema = msgspec.json.decode(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


def check_schema(schema: dict[str, Any], path: str) -> None:
    """``Invalid`` at ``path`` unless ``schema`` is a JSON Schema."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise Invalid(path, f"not a JSON schema: {exc.message}") from None


def _path(prefix: str, parts: Any) -> str:
    return prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


class AnalyticsRegistry:
    def __init__(self, agents: AgentsProjection) -> None:
        self.agents = agents

    def offers(self) -> dict[str, AnalyticOffer]:
        return self.agents.offers

    def validate(self, analytics: list[AnalyticIn], allow_unregistered: bool) -> None:
        """Raise ``Invalid`` (with every failing path) unless each analytic is offered and its
        params fit the offer's schema."""
        offers = self.agents.offers
        for i, a in enumerate(analytics):
            offer = offers.get(a.name)
            if offer is None:
                if allow_unregistered:
                    continue
                known = ", ".join(sorted(offers)) or "none yet"
                raise Invalid(
                    f"$.analytics[{i}].name",
                    f"no agent offers analytic {a.name!r} (registered: {known});"
                    " set allow_unregistered to wait for one",
                )
            validator = _compiled(msgspec.json.encode(offer.params_schema, order="sorted"))
            errors = sorted(validator.iter_errors(a.params), key=lambda e: list(e.absolute_path))
            if errors:
                details = [
                    {
                        "path": _path(f"$.analytics[{i}].params", e.absolute_path),
                        "message": e.message,
                    }
                    for e in errors
                ]
                err = Invalid(details[0]["path"], details[0]["message"])
                err.details = details
                raise err
