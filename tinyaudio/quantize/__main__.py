import sys

from tinyaudio.console import tinyaudio_quantize as main

sys.exit(main())
