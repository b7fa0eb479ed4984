import sys

from leadflow_attribution.app import SPEC
from leadflow_platform.main import run_service

sys.exit(run_service(SPEC))
