from zoo_export.cli import main

raise SystemExit(main())
