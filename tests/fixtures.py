"""Where the shared test inputs are: `../shared` beside the repository (as CI lays it out),
or the folder named by UPSTREAM_SHARED_DIR."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.settings import REPO_ROOT

SHARED_DIR = Path(os.environ.get("UPSTREAM_SHARED_DIR", REPO_ROOT.parent / "shared"))
X12_835_FIXTURES = SHARED_DIR / "fixtures" / "x12-835"
