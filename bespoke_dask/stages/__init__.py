"""The science: plain functions on pydantic models. Nothing here imports dask."""
