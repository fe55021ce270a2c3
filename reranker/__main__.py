from reranker.cli import main

raise SystemExit(main())
