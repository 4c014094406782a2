"""``python -m agentops.cookbook._zygote <fd>``: the fork server's zygote (see :mod:`agentops.cookbook._forkserver`).

A module, not ``python -c``: a forked kernel keeps the zygote's outermost frame, and a ``-c`` frame
(``<string>``) would look like user code to anything that walks the stack for the user's line (an
:class:`~agentops.usage.UnpricedModelWarning` would read ``<string>:1:``); a normal kernel's outermost
frame is ipykernel's launcher, an installed package's.
"""

import sys

from agentops.cookbook._forkserver import main

if __name__ == "__main__":
    sys.exit(main())
