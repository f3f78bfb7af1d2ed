from .cli import main

if __name__ == "__main__":  # guarded: the analysis worker process re-imports the main module
    raise SystemExit(main())
