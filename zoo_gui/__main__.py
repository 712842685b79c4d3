import sys

from zoo_gui.app import main

sys.exit(main())
