"""Bespoke SMIRNOFF torsion fitting on Dask distributed."""
