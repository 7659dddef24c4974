import sys

from tinyaudio.console import tinyaudio_export as main

sys.exit(main())
