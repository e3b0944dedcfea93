import sys

from syncd.app.cli import main

sys.exit(main())
