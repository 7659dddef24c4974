import sys

from tinyaudio.quantize.cli import main

sys.exit(main())
