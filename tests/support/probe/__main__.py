import sys

from leadflow_platform.main import run_service
from probe.service import SPEC

sys.exit(run_service(SPEC))
