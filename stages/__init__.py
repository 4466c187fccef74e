"""The DVC stages' entry points, `python -m stages.<stage>`, one module each.

A stage's process imports this package first: it asks here to die with the `dvc` that
started it, before the seconds of imports (torch) during which a killed `dvc` would
otherwise leave it training on, orphaned, writing outputs that dvc.lock does not record.
"""

import sys

from mnist_budget.base.signals import die_with_parent

# `python -m stages.<stage>`: Python sets argv[0] to "-m" while it locates the module
# (its docs); a test or a benchmark importing a stage keeps its own parent rules
if sys.argv[0] == "-m":
    die_with_parent()
