"""Command-line tools of fairseq-layerdrop (thin ``main()`` functions)."""
