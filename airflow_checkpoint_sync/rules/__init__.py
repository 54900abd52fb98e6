"""Pure rules: every decision the provider makes, apart from I/O.

Nothing here performs I/O or imports Airflow; a module here imports only other ``rules`` modules and
:mod:`airflow_checkpoint_sync.exceptions` (``tests/unit/test_layers.py`` holds this). Hooks, triggers, operators and
sensors read the world and ask these modules what it means, so the worker, poke and trigger paths never disagree.
"""
