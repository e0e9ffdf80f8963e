"""Molecules drawn for people: SMILES without maps and hydrogens, SVG with bonds highlighted."""

from rdkit import Chem
from rdkit.Chem.Draw import rdMolDraw2D

from bespoke_dask.schema import Drawing, DrawingRequest, Drawings

HIGHLIGHT = (0.95, 0.45, 0.1)  # orange: the bonds being fitted


def draw(request: DrawingRequest) -> Drawings:
    """Every molecule of the request as a readable SMILES and an SVG drawing."""
    highlight = request.highlight or [[] for _ in request.smiles]
    return Drawings(drawings=[drawing(s, bonds) for s, bonds in zip(request.smiles, highlight)])


def drawing(smiles: str, bonds: list[tuple[int, int]] = (), size: tuple[int, int] = (320, 220)) -> Drawing:
    """One molecule; `bonds` by the atom-map numbers of their atoms."""
    molecule = _heavy_atoms(smiles)
    if molecule is None:
        return Drawing(smiles=smiles, svg="")
    by_map = {atom.GetAtomMapNum(): atom.GetIdx() for atom in molecule.GetAtoms() if atom.GetAtomMapNum()}
    for atom in molecule.GetAtoms():
        atom.SetAtomMapNum(0)
    highlighted = [
        molecule.GetBondBetweenAtoms(by_map[a], by_map[b]).GetIdx()
        for a, b in bonds
        if a in by_map and b in by_map and molecule.GetBondBetweenAtoms(by_map[a], by_map[b])
    ]
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.drawOptions().clearBackground = False
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer,
        molecule,
        highlightAtoms=[],
        highlightBonds=highlighted,
        highlightBondColors={index: HIGHLIGHT for index in highlighted},
    )
    drawer.FinishDrawing()
    return Drawing(smiles=Chem.MolToSmiles(molecule), svg=drawer.GetDrawingText())


def _heavy_atoms(smiles: str) -> Chem.Mol | None:
    """The molecule without explicit hydrogens, its atom maps kept; None if rdkit cannot read it."""
    molecule = Chem.MolFromSmiles(smiles, sanitize=False)
    if molecule is None:
        return None
    try:
        Chem.SanitizeMol(molecule)
        return Chem.RemoveHs(molecule)
    except Exception:  # an odd SMILES is still worth showing as it is
        return None
