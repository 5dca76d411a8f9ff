import sys

from geotune.cli import main

sys.exit(main())
