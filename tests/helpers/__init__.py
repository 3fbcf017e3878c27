"""Test helpers, imported as ``helpers.<module>`` (``tests/`` is on pytest's ``pythonpath``).

- ``bundles``: tiny trained bundle copies, the bundle CLI runner, MONAI Label overrides, loading scripts by path
- ``dicom``: writing small DICOM files (pydicom 2.4 and 3)
- ``mlflow_store``: reading back a bundle's local MLflow store
- ``numerics``: `exact_cpu_kernels`, the reference of tests that compare numerical paths (oneDNN off)
- ``sample_recorder``: a handler recording which samples each rank trained on (used from a bundle config)
"""
