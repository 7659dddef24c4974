import sys

from tinyaudio.export.cli import main

sys.exit(main())
