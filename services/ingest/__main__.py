"""`python -m services.ingest`: the ingest service."""

from runtime.server import run
from services.ingest.server import build

if __name__ == "__main__":
    run("ingest", build)
