"""Commands that drive whole workspaces (run inside a checkout, `python -m tools.<name>`): `release` makes the
released models, `crossval` judges a training recipe by cross-validation, `experiments` lays DVC experiments side
by side. They read params.yaml and call the stages; the library (`faceocc/`) imports neither."""
