"""``python -m edgedeploy.reference_model`` (``make reference-model``): builds the reference
classifiers. The code lives in :mod:`edgedeploy.compress.reference`."""

from edgedeploy.compress.reference import main

if __name__ == "__main__":
    raise SystemExit(main())
