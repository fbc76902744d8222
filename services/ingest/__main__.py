"""`python -m services.ingest`: the ingest service."""

import gc

from runtime.server import run
from services.ingest.server import build

if __name__ == "__main__":
    # An upload allocates millions of short-lived objects without cycles (parsed rows, COPY
    # lines): at the default threshold (700) the cyclic collector ran every few rows and took
    # a tenth of the process's CPU. It still runs, a hundred times less often.
    gc.set_threshold(70_000)
    run("ingest", build)
