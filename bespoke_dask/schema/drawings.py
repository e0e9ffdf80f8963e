"""Molecule drawings for people: readable SMILES and SVG depictions (dashboard, CLI, report)."""

from pydantic import Field

from bespoke_dask.schema.base import SchemaModel


class DrawingRequest(SchemaModel):
    """Molecules to draw, each with the bonds to highlight."""

    smiles: list[str] = Field(description="SMILES, mapped or not")
    highlight: list[list[tuple[int, int]]] = Field(
        [], description="per molecule, bonds to highlight by the atom-map numbers of their atoms"
    )


class Drawing(SchemaModel):
    """One molecule drawn."""

    smiles: str = Field(description="without atom maps and hydrogens")
    svg: str


class Drawings(SchemaModel):
    """The drawings of a `DrawingRequest`, in its order."""

    drawings: list[Drawing]
