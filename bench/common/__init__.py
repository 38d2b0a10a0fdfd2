"""What the bench scripts share; they import it as `common.<module>` (a script's own folder,
bench/, is first on sys.path). A folder of its own, so `make bench` does not run it."""
