from tngvideo.cli import main

raise SystemExit(main())
