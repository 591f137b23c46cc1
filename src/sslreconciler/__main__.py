from sslreconciler.cli import main

raise SystemExit(main())
