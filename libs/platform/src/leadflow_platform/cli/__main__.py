import sys

from leadflow_platform.cli import main

sys.exit(main())
