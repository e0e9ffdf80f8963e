"""Shared base of every schema model: strict fields, JSON round-trip, a content hash."""

import hashlib
import json

from pydantic import BaseModel, ConfigDict

# Bump when a change to a model alters what a stored result means: old store entries stop matching.
SCHEMA_VERSION = 1

UNHASHED = {"hashed": False}  # json_schema_extra of a field that no content hash includes


class SchemaModel(BaseModel):
    """A frozen-by-convention pydantic model that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid")

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of this model (sorted keys) and the schema version.

        Fields declared with `Field(..., json_schema_extra=UNHASHED)` say how to run the work,
        not what it computes (e.g. time limits), and are left out.
        """
        unhashed = {
            name for name, field in type(self).model_fields.items() if field.json_schema_extra == UNHASHED
        }
        canonical = json.dumps(
            [SCHEMA_VERSION, type(self).__name__, self.model_dump(mode="json", exclude=unhashed)],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()
