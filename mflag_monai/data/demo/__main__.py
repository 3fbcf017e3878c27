"""``python -m mflag_monai.data.demo --out DIR``: write the demo data (see :func:`~mflag_monai.data.demo.main`)."""

from .api import main

raise SystemExit(main())
