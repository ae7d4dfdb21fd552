import sys

from veinscope.cli import main

sys.exit(main())
