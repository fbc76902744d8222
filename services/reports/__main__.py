"""`python -m services.reports`: the reports service."""

from runtime.server import run
from services.reports.server import build

if __name__ == "__main__":
    # Report builds come seldom, each a burst of charts, images and documents.
    run("reports", build, bursty=True)
